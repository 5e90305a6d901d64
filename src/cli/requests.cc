#include "cli/requests.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/map.h>
#include <google/protobuf/message.h>
#include <google/protobuf/repeated_ptr_field.h>
#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cli/value_parser.h"

namespace ods::cli {
namespace {

Status RequireTable(const ParsedArgs& args) {
  if (args.positional.empty()) {
    return InvalidArgumentError("missing TABLE");
  }
  if (args.positional[0].empty()) {
    return InvalidArgumentError("TABLE is empty");
  }
  return OkStatus();
}

Status RequireKeys(const ParsedArgs& args) {
  if (args.positional.size() < 2) {
    return InvalidArgumentError("missing KEY");
  }
  return OkStatus();
}

Status ParseFields(const ParsedArgs& args, google::protobuf::RepeatedPtrField<std::string>& out) {
  if (const std::string* list = args.Find("--fields")) {
    ODS_ASSIGN_OR_RETURN(std::vector<std::string> fields, SplitList(*list, "option '--fields'"));
    for (std::string& f : fields) {
      out.Add(std::move(f));
    }
  }
  return OkStatus();
}

// All of `in`, for an argument spelled '-' (`what` names it in the error).
Result<std::string> ReadStdin(std::istream& in, std::string_view what) {
  std::string text(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>{});
  if (in.bad()) {
    return InvalidArgumentError(std::string(what) + ": reading stdin failed");
  }
  return text;
}

// Parses the value of --json (or stdin for '-') into `request`; unknown fields are errors.
Status ParseJsonArg(std::string_view json_arg, std::istream& in,
                    google::protobuf::Message& request) {
  std::string json(json_arg);
  if (json == "-") {
    ODS_ASSIGN_OR_RETURN(json, ReadStdin(in, "--json -"));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &request, options);
  if (!status.ok()) {
    return InvalidArgumentError("--json: not a valid " + request.GetDescriptor()->full_name() +
                                ": " + std::string(status.message()));
  }
  return OkStatus();
}

Status RejectExtra(const ParsedArgs& args, size_t expected, std::string_view usage) {
  if (args.positional.size() > expected) {
    return InvalidArgumentError("unexpected argument '" + args.positional[expected] + "' (" +
                                std::string(usage) + ")");
  }
  return OkStatus();
}

// Fills `fields` from FIELD=VALUE arguments positional[first...].
Status ParseFieldAssignments(const ParsedArgs& args, size_t first,
                             google::protobuf::Map<std::string, ods::v1::Value>& fields) {
  for (size_t i = first; i < args.positional.size(); ++i) {
    ODS_ASSIGN_OR_RETURN(FieldAssignment field, ParseFieldAssignment(args.positional[i]));
    if (fields.contains(field.name)) {
      return InvalidArgumentError("field '" + field.name + "' given more than once ('" +
                                  args.positional[i] + "')");
    }
    fields[field.name] = std::move(field.value);
  }
  return OkStatus();
}

// Splits positional[1], FEATURE[,FEATURE...], into `out`.
Status ParseFeatureRefs(const ParsedArgs& args,
                        google::protobuf::RepeatedPtrField<std::string>& out) {
  if (args.positional.size() < 2) {
    return InvalidArgumentError("missing FEATURE (e.g. txn_count@1h)");
  }
  ODS_ASSIGN_OR_RETURN(std::vector<std::string> features,
                       SplitList(args.positional[1], "FEATURE list"));
  for (std::string& f : features) {
    out.Add(std::move(f));
  }
  return OkStatus();
}

// One ENTITY@MICROS item of `history`.
Status ParseEntityRow(std::string_view item, ods::v1::EntityRow& row) {
  const auto bad = [&](std::string_view why) {
    return InvalidArgumentError("bad ENTITY@MICROS '" + std::string(item) +
                                "': " + std::string(why));
  };
  const size_t at = item.rfind('@');
  if (at == std::string_view::npos) {
    return bad("missing '@'");
  }
  if (at == 0) {
    return bad("empty ENTITY");
  }
  Result<int64_t> micros = ParseInt64(item.substr(at + 1), "MICROS");
  if (!micros.ok()) {
    return bad(micros.status().message());
  }
  row.set_entity(std::string(item.substr(0, at)));
  row.set_timestamp_micros(*micros);
  return OkStatus();
}

Result<ods::v1::PutRequest> BuildPutFromJson(const ParsedArgs& args, std::string_view json_arg,
                                             std::istream& in) {
  if (args.positional.size() > 1) {
    return InvalidArgumentError("with --json, give no KEY or FIELD=VALUE ('" + args.positional[1] +
                                "')");
  }
  if (args.Find("--event-time") != nullptr) {
    return InvalidArgumentError(
        "--event-time can't be combined with --json (set "
        "event_time_micros per record)");
  }
  ods::v1::PutRequest request;
  ODS_RETURN_IF_ERROR(ParseJsonArg(json_arg, in, request));
  const std::string& table = args.positional[0];
  if (!request.table().empty() && request.table() != table) {
    return InvalidArgumentError("--json: \"table\" is '" + request.table() + "' but TABLE is '" +
                                table + "'");
  }
  request.set_table(table);
  return request;
}

// The text of a FILE argument: the file at `path`, or standard input for "-".
Result<std::string> ReadFileArgument(const std::string& path, std::istream& in) {
  if (path == "-") return ReadStdin(in, "FILE -");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return InvalidArgumentError("FILE '" + path + "' is a directory");
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return InvalidArgumentError("can't open FILE '" + path +
                                "': " + std::generic_category().message(errno));
  }
  std::string text(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>{});
  if (file.bad()) return InvalidArgumentError("reading FILE '" + path + "' failed");
  return text;
}

}  // namespace

Result<ods::v1::PutRequest> BuildPutRequest(const ParsedArgs& args, std::istream& in) {
  ODS_RETURN_IF_ERROR(RequireTable(args));
  if (const std::string* json = args.Find("--json")) {
    return BuildPutFromJson(args, *json, in);
  }
  ODS_RETURN_IF_ERROR(RequireKeys(args));
  ods::v1::PutRequest request;
  request.set_table(args.positional[0]);
  ods::v1::Record& record = *request.add_records();
  record.set_key(args.positional[1]);
  if (const std::string* micros = args.Find("--event-time")) {
    ODS_ASSIGN_OR_RETURN(const int64_t t, ParseInt64(*micros, "--event-time"));
    record.set_event_time_micros(t);
  }
  ODS_RETURN_IF_ERROR(ParseFieldAssignments(args, 2, *record.mutable_fields()));
  return request;
}

Result<ods::v1::GetRequest> BuildGetRequest(const ParsedArgs& args) {
  ODS_RETURN_IF_ERROR(RequireTable(args));
  ODS_RETURN_IF_ERROR(RequireKeys(args));
  ods::v1::GetRequest request;
  request.set_table(args.positional[0]);
  for (size_t i = 1; i < args.positional.size(); ++i) {
    request.add_keys(args.positional[i]);
  }
  ODS_RETURN_IF_ERROR(ParseFields(args, *request.mutable_fields()));
  return request;
}

Result<ods::v1::DeleteRequest> BuildDeleteRequest(const ParsedArgs& args) {
  ODS_RETURN_IF_ERROR(RequireTable(args));
  ODS_RETURN_IF_ERROR(RequireKeys(args));
  ods::v1::DeleteRequest request;
  request.set_table(args.positional[0]);
  for (size_t i = 1; i < args.positional.size(); ++i) {
    request.add_keys(args.positional[i]);
  }
  return request;
}

Result<ods::v1::ScanRequest> BuildScanRequest(const ParsedArgs& args) {
  ODS_RETURN_IF_ERROR(RequireTable(args));
  if (args.positional.size() > 1) {
    return InvalidArgumentError("unexpected argument '" + args.positional[1] +
                                "' (scan takes only TABLE; filter with --prefix)");
  }
  ods::v1::ScanRequest request;
  request.set_table(args.positional[0]);
  if (const std::string* prefix = args.Find("--prefix")) {
    request.set_prefix(*prefix);
  }
  if (const std::string* after = args.Find("--start-after")) {
    request.set_start_after(*after);
  }
  if (const std::string* limit = args.Find("--limit")) {
    ODS_ASSIGN_OR_RETURN(const uint32_t n, ParseUint32(*limit, "--limit"));
    request.set_limit(n);
  }
  ODS_RETURN_IF_ERROR(ParseFields(args, *request.mutable_fields()));
  return request;
}

Result<ods::v1::SubscribeRequest> BuildSubscribeRequest(const ParsedArgs& args) {
  if (!args.positional.empty()) {
    return InvalidArgumentError("unexpected argument '" + args.positional[0] +
                                "' (name what to follow with --table, --template or --feature)");
  }
  ods::v1::SubscribeRequest request;
  auto add = [&](std::string_view flag, google::protobuf::RepeatedPtrField<std::string>& out) {
    const auto it = args.repeated.find(flag);
    if (it == args.repeated.end()) return OkStatus();
    for (const std::string& v : it->second) {
      if (v.empty()) return InvalidArgumentError(std::string(flag) + " is empty");
      out.Add(std::string(v));
    }
    return OkStatus();
  };
  ODS_RETURN_IF_ERROR(add("--table", *request.mutable_tables()));
  ODS_RETURN_IF_ERROR(add("--template", *request.mutable_templates()));
  ODS_RETURN_IF_ERROR(add("--feature", *request.mutable_features()));
  ODS_RETURN_IF_ERROR(add("--key", *request.mutable_keys()));
  if (request.tables().empty() && request.templates().empty() && request.features().empty()) {
    return InvalidArgumentError("name at least one --table, --template or --feature");
  }
  if (const std::string* from = args.Find("--from")) {
    ODS_ASSIGN_OR_RETURN(const int64_t seq, ParseInt64(*from, "--from"));
    if (seq < 1) {
      return InvalidArgumentError("--from '" + *from + "' must be a sequence, 1 or more");
    }
    request.set_from_sequence(static_cast<uint64_t>(seq));
  }
  return request;
}

Result<ods::v1::PushEventsRequest> BuildPushRequest(const ParsedArgs& args, std::istream& in) {
  ods::v1::PushEventsRequest request;
  if (const std::string* json = args.Find("--json")) {
    if (!args.positional.empty()) {
      return InvalidArgumentError("with --json, give no TEMPLATE or FIELD=VALUE ('" +
                                  args.positional[0] + "'); each event names its \"template\"");
    }
    if (args.Find("--event-id") != nullptr) {
      return InvalidArgumentError(
          "--event-id can't be combined with --json (set event_id per event)");
    }
    ODS_RETURN_IF_ERROR(ParseJsonArg(*json, in, request));
    return request;
  }
  if (args.positional.empty()) {
    return InvalidArgumentError("missing TEMPLATE");
  }
  if (args.positional[0].empty()) {
    return InvalidArgumentError("TEMPLATE is empty");
  }
  if (args.positional.size() < 2) {
    return InvalidArgumentError(
        "missing FIELD=VALUE (give at least the template's key and timestamp fields)");
  }
  ods::v1::Event& event = *request.add_events();
  event.set_template_(args.positional[0]);
  if (const std::string* id = args.Find("--event-id")) {
    if (id->empty()) {
      return InvalidArgumentError("--event-id is empty (leave it out for no de-duplication)");
    }
    event.set_event_id(*id);
  }
  ODS_RETURN_IF_ERROR(ParseFieldAssignments(args, 1, *event.mutable_fields()));
  return request;
}

Result<ods::v1::GetOnlineFeaturesRequest> BuildFeaturesRequest(const ParsedArgs& args) {
  if (args.positional.empty()) {
    return InvalidArgumentError("missing ENTITY");
  }
  ods::v1::GetOnlineFeaturesRequest request;
  ODS_ASSIGN_OR_RETURN(std::vector<std::string> entities,
                       SplitList(args.positional[0], "ENTITY list"));
  for (std::string& e : entities) {
    request.add_entities(std::move(e));
  }
  ODS_RETURN_IF_ERROR(ParseFeatureRefs(args, *request.mutable_features()));
  ODS_RETURN_IF_ERROR(RejectExtra(
      args, 2, "features takes ENTITY[,ENTITY...] FEATURE[,FEATURE...]; separate with commas"));
  if (const std::string* as_of = args.Find("--as-of")) {
    ODS_ASSIGN_OR_RETURN(const int64_t micros, ParseInt64(*as_of, "--as-of"));
    request.set_as_of_micros(micros);
  }
  return request;
}

Result<ods::v1::GetHistoricalFeaturesRequest> BuildHistoryRequest(const ParsedArgs& args) {
  if (args.positional.empty()) {
    return InvalidArgumentError("missing ENTITY@MICROS");
  }
  ods::v1::GetHistoricalFeaturesRequest request;
  ODS_ASSIGN_OR_RETURN(const std::vector<std::string> items,
                       SplitList(args.positional[0], "ENTITY@MICROS list"));
  for (const std::string& item : items) {
    ODS_RETURN_IF_ERROR(ParseEntityRow(item, *request.add_rows()));
  }
  ODS_RETURN_IF_ERROR(ParseFeatureRefs(args, *request.mutable_features()));
  ODS_RETURN_IF_ERROR(RejectExtra(args, 2,
                                  "history takes ENTITY@MICROS[,ENTITY@MICROS...] "
                                  "FEATURE[,FEATURE...]; separate with commas"));
  return request;
}

Result<ods::v1::ApplyDefinitionsRequest> BuildApplyRequest(const ParsedArgs& args,
                                                           std::istream& in) {
  if (args.positional.empty()) {
    return InvalidArgumentError("missing FILE (or '-' for stdin)");
  }
  ODS_RETURN_IF_ERROR(RejectExtra(args, 1, "apply takes one FILE"));
  ods::v1::ApplyDefinitionsRequest request;
  ODS_ASSIGN_OR_RETURN(*request.mutable_yaml(), ReadFileArgument(args.positional[0], in));
  return request;
}

Result<ods::v1::ListDefinitionsRequest> BuildDefinitionsRequest(const ParsedArgs& args) {
  ODS_RETURN_IF_ERROR(RejectExtra(args, 0, "definitions takes no arguments"));
  return ods::v1::ListDefinitionsRequest();
}

Result<ods::v1::ExecuteRequest> BuildExecuteRequest(const ParsedArgs& args) {
  if (args.positional.empty()) return InvalidArgumentError("missing FUNCTION");
  if (args.positional.size() < 2) return InvalidArgumentError("missing TABLE");
  if (args.positional.size() < 3) return InvalidArgumentError("missing KEY");
  ods::v1::ExecuteRequest request;
  request.set_function(args.positional[0]);
  request.set_table(args.positional[1]);
  for (size_t i = 2; i < args.positional.size(); ++i) request.add_keys(args.positional[i]);
  if (auto it = args.repeated.find("--arg"); it != args.repeated.end()) {
    for (const std::string& arg : it->second) {
      Result<FieldAssignment> parsed = ParseFieldAssignment(arg);
      if (!parsed.ok()) {
        return InvalidArgumentError("--arg: " + parsed.status().message());
      }
      if (request.args().contains(parsed->name)) {
        return InvalidArgumentError("--arg '" + parsed->name + "' given more than once ('" + arg +
                                    "')");
      }
      (*request.mutable_args())[parsed->name] = std::move(parsed->value);
    }
  }
  return request;
}

Result<ods::v1::RegisterFunctionRequest> BuildRegisterRequest(const ParsedArgs& args,
                                                              std::istream& in) {
  if (args.positional.empty()) return InvalidArgumentError("missing NAME");
  if (args.positional.size() < 2) {
    return InvalidArgumentError("missing KIND (aggregator, derived or procedure)");
  }
  if (args.positional.size() < 3) return InvalidArgumentError("missing FILE (or '-' for stdin)");
  ODS_RETURN_IF_ERROR(RejectExtra(args, 3, "register takes NAME KIND FILE"));
  ods::v1::RegisterFunctionRequest request;
  request.set_name(args.positional[0]);
  request.set_kind(args.positional[1]);
  ODS_ASSIGN_OR_RETURN(*request.mutable_source(), ReadFileArgument(args.positional[2], in));
  if (const std::string* v = args.Find("--instructions")) {
    ODS_ASSIGN_OR_RETURN(const int64_t n, ParseInt64(*v, "--instructions"));
    if (n <= 0) return InvalidArgumentError("--instructions must be > 0, got '" + *v + "'");
    request.set_max_instructions(static_cast<uint64_t>(n));
  }
  if (const std::string* v = args.Find("--memory")) {
    ODS_ASSIGN_OR_RETURN(const int64_t n, ParseInt64(*v, "--memory"));
    if (n <= 0) return InvalidArgumentError("--memory must be > 0 bytes, got '" + *v + "'");
    request.set_max_memory_bytes(static_cast<uint64_t>(n));
  }
  if (const std::string* v = args.Find("--wall-micros")) {
    ODS_ASSIGN_OR_RETURN(const int64_t n, ParseInt64(*v, "--wall-micros"));
    if (n <= 0) return InvalidArgumentError("--wall-micros must be > 0, got '" + *v + "'");
    request.set_max_wall_micros(n);
  }
  request.set_keep_state(args.Find("--keep-state") != nullptr);
  return request;
}

Result<ods::v1::ListFunctionsRequest> BuildFunctionsRequest(const ParsedArgs& args) {
  ODS_RETURN_IF_ERROR(RejectExtra(args, 0, "functions takes no arguments"));
  return ods::v1::ListFunctionsRequest();
}

Result<ods::v1::GetTierStatsRequest> BuildTiersRequest(const ParsedArgs& args) {
  ODS_RETURN_IF_ERROR(RejectExtra(args, 0, "tiers takes no arguments"));
  return ods::v1::GetTierStatsRequest();
}

Result<ods::v1::GetServerStatsRequest> BuildStatsRequest(const ParsedArgs& args) {
  ODS_RETURN_IF_ERROR(RejectExtra(args, 0, "stats takes no arguments"));
  return ods::v1::GetServerStatsRequest();
}

Result<ods::v1::ReloadConfigRequest> BuildReloadRequest(const ParsedArgs& args) {
  ODS_RETURN_IF_ERROR(RejectExtra(args, 0, "reload takes no arguments"));
  return ods::v1::ReloadConfigRequest();
}

Result<ods::v1::MoveRecordsRequest> BuildMoveRequest(const ParsedArgs& args) {
  if (args.positional.size() < 2) {
    return InvalidArgumentError("move needs a TABLE and at least one KEY");
  }
  const std::string* to = args.Find("--to");
  if (to == nullptr) return InvalidArgumentError("move needs --to ram, ssd or backing");
  if (*to != "ram" && *to != "ssd" && *to != "backing") {
    return InvalidArgumentError("--to must be ram, ssd or backing, got '" + *to + "'");
  }
  ods::v1::MoveRecordsRequest request;
  request.set_table(args.positional[0]);
  for (size_t i = 1; i < args.positional.size(); ++i) request.add_keys(args.positional[i]);
  request.set_to(*to);
  return request;
}

Result<grpc::health::v1::HealthCheckRequest> BuildHealthRequest(const ParsedArgs& args) {
  if (args.positional.size() > 1) {
    return InvalidArgumentError("unexpected argument '" + args.positional[1] +
                                "' (health takes at most one SERVICE)");
  }
  grpc::health::v1::HealthCheckRequest request;
  if (!args.positional.empty()) {
    request.set_service(args.positional[0]);
  }
  return request;
}

}  // namespace ods::cli
