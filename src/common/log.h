// One line per event on stderr: the log of every custos process (server, core, keeper, dev
// mode). JSON objects when stderr is not a terminal (files, journald, collectors) — each with
// "time" (UTC, RFC 3339 with milliseconds) so lines from several processes can be ordered —
// and a line a person reads on a terminal. CUSTOS_LOG_FORMAT=json|text overrides the choice
// (`custos --log-format`), CUSTOS_LOG_LEVEL=debug|info|warn|error drops lines below a level;
// both are inherited by the processes custos starts. A line is written with one write(2), so
// concurrent threads never interleave. Callers never put secret material in a line.
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace custos {

// LogTimestamp returns the current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string LogTimestamp();

// LogLine writes `line` (a JSON object with "level", "component", "msg" and any other members;
// "time" is set here) to stderr, unless its level is below the minimum.
void LogLine(nlohmann::json line);

// Log is LogLine of {"level", "component", "msg"} plus the members of `extra`.
void Log(const std::string& level, const std::string& component, const std::string& msg,
         const nlohmann::json& extra = nlohmann::json::object());

// FormatLogText renders a log object as the terminal line: "TIME LEVEL component: msg  k=v ...".
std::string FormatLogText(const nlohmann::json& line);

}  // namespace custos
