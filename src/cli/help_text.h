#pragma once

#include <string_view>

namespace ods::cli {

// The --help texts of `ods` and its commands; the command-line contract for operators.
extern const std::string_view kTopLevelHelp;
extern const std::string_view kPutHelp;
extern const std::string_view kGetHelp;
extern const std::string_view kDeleteHelp;
extern const std::string_view kScanHelp;
extern const std::string_view kPushHelp;
extern const std::string_view kSubscribeHelp;
extern const std::string_view kFeaturesHelp;
extern const std::string_view kHistoryHelp;
extern const std::string_view kApplyHelp;
extern const std::string_view kDefinitionsHelp;
extern const std::string_view kExecHelp;
extern const std::string_view kRegisterHelp;
extern const std::string_view kFunctionsHelp;
extern const std::string_view kTiersHelp;
extern const std::string_view kStatsHelp;
extern const std::string_view kMoveHelp;
extern const std::string_view kReloadHelp;
extern const std::string_view kHealthHelp;

}  // namespace ods::cli
