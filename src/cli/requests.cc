#include "cli/requests.h"

#include <google/protobuf/util/json_util.h>

#include <iterator>
#include <string>
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
  std::string json(json_arg);
  if (json == "-") {
    json.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) {
      return InvalidArgumentError("--json -: reading stdin failed");
    }
  }
  ods::v1::PutRequest request;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &request, options);
  if (!status.ok()) {
    return InvalidArgumentError("--json: not a valid ods.v1.PutRequest: " +
                                std::string(status.message()));
  }
  const std::string& table = args.positional[0];
  if (!request.table().empty() && request.table() != table) {
    return InvalidArgumentError("--json: \"table\" is '" + request.table() + "' but TABLE is '" +
                                table + "'");
  }
  request.set_table(table);
  return request;
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
  auto& fields = *record.mutable_fields();
  for (size_t i = 2; i < args.positional.size(); ++i) {
    ODS_ASSIGN_OR_RETURN(FieldAssignment field, ParseFieldAssignment(args.positional[i]));
    if (fields.contains(field.name)) {
      return InvalidArgumentError("field '" + field.name + "' given more than once ('" +
                                  args.positional[i] + "')");
    }
    fields[field.name] = std::move(field.value);
  }
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
