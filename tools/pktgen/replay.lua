-- SPDX-License-Identifier: BSD-3-Clause
--
-- replay.lua: replay a capture into Stateline with pktgen-dpdk 23.06.1.
--
-- The capture is loaded by pktgen itself from its command line (-s P:file.pcap, classic pcap only:
-- convert pcapng with `editcap -F pcap in.pcapng out.pcap`); this script switches the port to
-- pcap mode, sets the rate, sends, waits, stops and prints the port counters.
--
--   pktgen -l 0-2 -n 4 -a <pci> -- -P -m "[1:2].0" -s 0:capture.pcap -f tools/pktgen/replay.lua
--
-- Settings come from the environment (pktgen's -f takes no arguments):
--   SL_PORT      pktgen port number                        (default "0")
--   SL_RATE      percent of the port's line rate            (default 10)
--   SL_PCAP      the same file as -s: if set, its frames are counted here and exactly one pass
--                is sent (pktgen loops over the file forever otherwise)
--   SL_DURATION  seconds to send when SL_PCAP is not set, and the upper bound when it is
--                (default 10)
--   SL_QUIT      "1": quit pktgen at the end (default: stay at the prompt)
--
-- Functions used (pktgen 23.06.1 app/lpktgenlib.c): pktgen.screen, pktgen.clr, pktgen.set
-- ("rate", "count"), pktgen.pcap(portlist, "on"), pktgen.start, pktgen.stop, pktgen.isSending,
-- pktgen.delay (ms), pktgen.portStats(portlist, "port"), pktgen.quit. Written from the pktgen
-- sources and docs; not run here (pktgen is not packaged in Debian).

local port     = os.getenv("SL_PORT") or "0"
local rate     = tonumber(os.getenv("SL_RATE") or "10")
local pcap     = os.getenv("SL_PCAP")
local duration = tonumber(os.getenv("SL_DURATION") or "10")
local quit     = os.getenv("SL_QUIT") == "1"

-- Number of records in a classic pcap file (either byte order, micro- or nanosecond magic).
local function pcap_count(path)
    local f = io.open(path, "rb")
    if not f then
        return nil, "cannot open " .. path
    end
    local hdr = f:read(24)
    if not hdr or #hdr < 24 then
        f:close()
        return nil, path .. ": not a pcap file (too short)"
    end
    local magic = string.unpack("<I4", hdr)
    local order
    if magic == 0xa1b2c3d4 or magic == 0xa1b23c4d then
        order = "<"
    elseif magic == 0xd4c3b2a1 or magic == 0x4d3cb2a1 then
        order = ">"
    else
        f:close()
        return nil, path .. ": not a classic pcap file (pcapng? convert with editcap -F pcap)"
    end
    local n = 0
    while true do
        local rec = f:read(16)
        if not rec or #rec < 16 then
            break
        end
        local incl = string.unpack(order .. "I4", rec, 9)
        if not f:seek("cur", incl) then
            break
        end
        n = n + 1
    end
    f:close()
    return n
end

local function stats(tag)
    local s = pktgen.portStats(port, "port")[tonumber(port)]
    print(string.format("replay.lua: %s port %s: opackets %d obytes %d oerrors %d | ipackets %d imissed %d",
        tag, port, s.opackets, s.obytes, s.oerrors, s.ipackets, s.imissed))
    return s
end

local count = 0
if pcap and pcap ~= "" then
    local n, err = pcap_count(pcap)
    if not n then
        print("replay.lua: " .. err)
        return
    end
    count = n
    print(string.format("replay.lua: %s holds %d frames: sending one pass", pcap, n))
end

pktgen.screen("off")
pktgen.stop(port)
pktgen.clr()
pktgen.set(port, "rate", rate)
pktgen.set(port, "count", count)     -- 0 = until stopped
pktgen.pcap(port, "on")              -- same as the CLI's "enable <port> pcap"
pktgen.delay(500)

print(string.format("replay.lua: port %s, rate %g%%, %s", port, rate,
    count > 0 and (count .. " frames") or (duration .. " s")))
pktgen.start(port)

local waited = 0
while waited < duration * 1000 do
    pktgen.delay(1000)
    waited = waited + 1000
    if count > 0 and pktgen.isSending(port)[tonumber(port)] == "n" then
        break
    end
end
pktgen.stop(port)
pktgen.delay(1000)                   -- let the last counters settle

local s = stats("done")
if count > 0 and s.opackets ~= count then
    print(string.format("replay.lua: WARNING sent %d of %d frames (raise SL_DURATION or the rate)",
        s.opackets, count))
end
pktgen.pcap(port, "off")
pktgen.screen("on")
if quit then
    pktgen.quit()
end
