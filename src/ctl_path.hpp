// SPDX-License-Identifier: BSD-3-Clause
// The control socket's default place and the protocol's limits, shared by the appliance
// (src/ctl_server.cpp) and stateline-ctl (tools/ctl/), so both resolve the same path with no
// argument. Header-only, no DPDK: the tool includes it too.
//
//   root                        /run/stateline/stateline.sock   (folder 0700, created)
//   another user, with          $XDG_RUNTIME_DIR/stateline.sock (the user's private folder)
//     XDG_RUNTIME_DIR set
//   another user, without       /tmp/stateline-<uid>/stateline.sock (folder 0700, created,
//                               refused unless it is a real folder of that user's, 0700)
//
// Protocol (docs/operations.md): one JSON object per line each way. A request line is at most
// kMaxRequest bytes, newline included.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <string>

namespace stateline::ctl {

inline constexpr size_t kMaxRequest = 4096;
inline constexpr const char* kSocketName = "stateline.sock";

inline std::string default_socket_dir() {
    if (geteuid() == 0) return "/run/stateline";
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/') return xdg;
    return "/tmp/stateline-" + std::to_string(geteuid());
}

inline std::string default_socket_path() { return default_socket_dir() + "/" + kSocketName; }

// `--ctl-socket` / `--socket` value to a path: "" means the default.
inline std::string resolve_socket_path(const std::string& given) {
    return given.empty() ? default_socket_path() : given;
}

}  // namespace stateline::ctl
