-- SPDX-License-Identifier: BSD-3-Clause
--
-- synflood.lua: a SYN flood toward one victim IP:port, built by pktgen-dpdk 23.06.1's range mode,
-- sent on a port that is wired to a port Stateline watches.
--
--   pktgen -l 0-2 -n 4 -a <pci> -- -P -m "[1:2].0" -f tools/pktgen/synflood.lua
--
-- Every frame: 64 bytes, IPv4, TCP with only SYN set, destination SL_VICTIM:SL_DPORT, source
-- addresses and ports stepping over the ranges below (incrementing; SL_RANDOM=1 also randomises
-- the low 16 bits of the source address and the source port). Each (source address, source
-- port) pair is a new connection attempt for Stateline.
--
-- Settings come from the environment (pktgen's -f takes no arguments):
--   SL_PORT       pktgen port number                              (default "0")
--   SL_VICTIM     destination IPv4 address                        (default 192.0.2.10)
--   SL_DPORT      destination TCP port                            (default 80)
--   SL_SRC_MIN    first source address                            (default 198.18.0.1)
--   SL_SRC_MAX    last source address                             (default 198.18.255.254)
--   SL_SPORT_MIN  first source port                               (default 1024)
--   SL_SPORT_MAX  last source port                                (default 65535)
--   SL_DST_MAC    destination MAC (Stateline's port is promiscuous; any unicast address will do)
--                                                                  (default 02:00:00:00:00:02)
--   SL_RATE       percent of line rate                            (default 1)
--   SL_DURATION   seconds                                         (default 10)
--   SL_RANDOM     "1": random low 16 bits of source address and random source port
--   SL_QUIT       "1": quit pktgen at the end
--
-- Known limitation of 23.06.1: range mode gives every SYN the same TCP sequence number (the
-- range's "tcp seq" start value; the per-packet increment is not applied by that release's range
-- builder), so all attempts share one ISN. Stateline keys connections by 5-tuple, so they still
-- count as distinct connections; a check that expects varied ISNs needs a later pktgen (or a
-- capture from build/tools/stateline-gen replayed with replay.lua).
--
-- The TCP flags of range packets have no Lua function in 23.06.1, only the CLI commands
-- "range <port> tcp flag clr|set <flag>": this script writes them to a small command file and
-- runs it with pktgen.load() (which executes CLI command files). Everything else uses the Lua
-- API of app/lpktgenlib.c: pktgen.set, pktgen.set_mac, pktgen.set_proto, pktgen.set_type, the
-- range setters pktgen.dst_mac/src_ip/dst_ip/src_port/dst_port/ip_proto/pkt_size(port, "start"|
-- "min"|"max"|"inc", value), pktgen.set_range(port, "on"), pktgen.rnd, pktgen.start/stop,
-- pktgen.delay, pktgen.portStats. Written from the pktgen sources and docs; not run here
-- (pktgen is not packaged in Debian). Check the result on pktgen's range page ("page range":
-- the TCP flags row must read ....S.) before trusting a run.

local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then
        return default
    end
    return v
end

local port      = env("SL_PORT", "0")
local victim    = env("SL_VICTIM", "192.0.2.10")
local dport     = tonumber(env("SL_DPORT", "80"))
local src_min   = env("SL_SRC_MIN", "198.18.0.1")
local src_max   = env("SL_SRC_MAX", "198.18.255.254")
local sport_min = tonumber(env("SL_SPORT_MIN", "1024"))
local sport_max = tonumber(env("SL_SPORT_MAX", "65535"))
local dst_mac   = env("SL_DST_MAC", "02:00:00:00:00:02")
local rate      = tonumber(env("SL_RATE", "1"))
local duration  = tonumber(env("SL_DURATION", "10"))
local random    = env("SL_RANDOM", "0") == "1"
local quit      = env("SL_QUIT", "0") == "1"

pktgen.screen("off")
pktgen.stop(port)
pktgen.clr()

-- The single-packet template, which range mode starts from.
pktgen.set_type(port, "ipv4")
pktgen.set_proto(port, "tcp")
pktgen.set(port, "size", 64)
pktgen.set(port, "rate", rate)
pktgen.set(port, "count", 0)
pktgen.set_mac(port, "dst", dst_mac)

-- Range: fixed destination, stepping sources. Each setter takes start, min, max, inc.
local function range4(fn, start, min, max, inc)
    fn(port, "start", start)
    fn(port, "min", min)
    fn(port, "max", max)
    fn(port, "inc", inc)
end
range4(pktgen.dst_mac, dst_mac, dst_mac, dst_mac, "00:00:00:00:00:00")
range4(pktgen.dst_ip, victim, victim, victim, "0.0.0.0")
range4(pktgen.src_ip, src_min, src_min, src_max, "0.0.0.1")
range4(pktgen.dst_port, dport, dport, dport, 0)
range4(pktgen.src_port, sport_min, sport_min, sport_max, 1)
range4(pktgen.pkt_size, 64, 64, 64, 0)
pktgen.ip_proto(port, "tcp")

-- TCP flags: clear the default (ACK), set SYN, through a CLI command file.
local tmpbase = os.tmpname()          -- creates the file: keep the name, use it with ".pkt"
os.remove(tmpbase)
local cmdfile = tmpbase .. ".pkt"
local f = assert(io.open(cmdfile, "w"))
f:write(string.format("range %s proto tcp\n", port))
f:write(string.format("range %s tcp flag clr all\n", port))
f:write(string.format("range %s tcp flag set syn\n", port))
f:close()
local ok, err = pcall(pktgen.load, cmdfile)
os.remove(cmdfile)
if not ok then
    print("synflood.lua: could not set the range TCP flags (" .. tostring(err) .. "); "
        .. "type them at the prompt: range " .. port .. " tcp flag clr all / range " .. port
        .. " tcp flag set syn")
    return
end

if random then
    -- 32-bit masks at a byte offset into the frame: '.' keeps a bit, 'X' randomises it.
    -- Offset 26 = IPv4 source address (Ethernet 14 + 12); offset 34 = TCP source, destination port.
    pktgen.rnd(port, 0, 26, "................XXXXXXXXXXXXXXXX")
    pktgen.rnd(port, 1, 34, "XXXXXXXXXXXXXXXX................")
end

pktgen.set_range(port, "on")
pktgen.delay(500)

print(string.format("synflood.lua: port %s, SYN to %s:%d from %s-%s ports %d-%d%s, 64 B, %g%% for %d s",
    port, victim, dport, src_min, src_max, sport_min, sport_max, random and " (random)" or "", rate, duration))
pktgen.start(port)
pktgen.delay(duration * 1000)
pktgen.stop(port)
pktgen.delay(1000)

local s = pktgen.portStats(port, "port")[tonumber(port)]
print(string.format("synflood.lua: sent %d SYNs (%d bytes), oerrors %d", s.opackets, s.obytes, s.oerrors))

pktgen.set_range(port, "off")
if random then
    pktgen.rnd(port, 0, 26, "off")
    pktgen.rnd(port, 1, 34, "off")
end
pktgen.screen("on")
if quit then
    pktgen.quit()
end
