// One JSON object per line on stderr: the log format of every custos process (server, core,
// keeper, dev mode). LogLine adds "time" (UTC, RFC 3339 with milliseconds) so lines from
// several processes can be ordered, and writes the line with one write(2) so concurrent
// threads never interleave. Callers never put secret material in a line.
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace custos {

// LogTimestamp returns the current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string LogTimestamp();

// LogLine writes `line` (a JSON object; "time" is set here) followed by a newline to stderr.
void LogLine(nlohmann::json line);

// Log is LogLine of {"level", "component", "msg"} plus the members of `extra`.
void Log(const std::string& level, const std::string& component, const std::string& msg,
         const nlohmann::json& extra = nlohmann::json::object());

}  // namespace custos
