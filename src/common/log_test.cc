// The terminal rendering of a log line (common/log.h).
#include "common/log.h"

#include "gtest/gtest.h"

namespace custos {
namespace {

TEST(LogText, RendersTimeLevelComponentMessageAndFields) {
  nlohmann::json line = {{"time", "2026-12-03T09:55:00.623Z"}, {"level", "warn"}, {"component", "host"},
                         {"msg", "join failed; retrying"}, {"reason", "peer sealed"}, {"attempt", 3}};
  EXPECT_EQ(FormatLogText(line),
            "2026-12-03T09:55:00.623Z WARN  host: join failed; retrying  (attempt=3 reason=peer sealed)");
  EXPECT_EQ(FormatLogText({{"time", "t"}, {"level", "info"}, {"component", "dev"}, {"msg", "ready"}}),
            "t INFO  dev: ready");
}

TEST(LogText, TimestampIsUtcWithMilliseconds) {
  std::string t = LogTimestamp();
  ASSERT_EQ(t.size(), 24u) << t;
  EXPECT_EQ(t[10], 'T');
  EXPECT_EQ(t[19], '.');
  EXPECT_EQ(t.back(), 'Z');
}

}  // namespace
}  // namespace custos
