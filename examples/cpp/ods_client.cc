// A minimal ODS client in C++: one record in, read back, three events in, features out. The
// same steps and output as examples/python/ods_client.py, against an odsd running the shipped
// configuration (config/odsd.yaml, which odsd embeds: run `odsd` with no flags):
//
//   1. Store.Put            a user_profile record for --key (age 42, country NL)
//   2. Store.Get            that record back
//   3. Features.PushEvents  three transactions of --key (12.5 at m1, 30.25 at m2, 7.5 at m1)
//   4. Features.GetOnlineFeatures  txn_count@1h, txn_amount@1h, merchants_7d, user_profile:age
//
// Usage: ods_client_example [--target HOST:PORT] [--key USER] [--api-key KEY] [--timeout SECONDS]
// Built by CMake as build/examples/ods_client_example from the generated code of proto/ (target
// ods_proto). Exit code, as the `ods` CLI's: 0 on success, 1 if a call fails or an answer is not
// what a correct server gives (record not found, an event rejected), 2 for bad usage, 3 if odsd
// cannot be reached.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ods/v1/features.grpc.pb.h"
#include "ods/v1/store.grpc.pb.h"

namespace {

struct Options {
  std::string target = "127.0.0.1:7070";
  std::string key;  // empty: a fresh random one, so that runs do not add up
  std::string api_key;
  std::chrono::milliseconds timeout{10'000};  // for the connection and for each call
};

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomHex(int digits) {
  std::random_device random;
  std::ostringstream out;
  out << std::hex;
  for (int i = 0; i < digits; ++i) out << (random() % 16);
  return out.str();
}

// An ods.v1.Value as text: the set member of its `kind` oneof.
std::string Format(const ods::v1::Value& value) {
  std::ostringstream out;
  switch (value.kind_case()) {
    case ods::v1::Value::kInt64Value: out << value.int64_value(); break;
    case ods::v1::Value::kDoubleValue: out << value.double_value(); break;
    case ods::v1::Value::kBoolValue: out << (value.bool_value() ? "True" : "False"); break;
    case ods::v1::Value::kStringValue: out << value.string_value(); break;
    case ods::v1::Value::kBytesValue: out << value.bytes_value().size() << " bytes"; break;
    case ods::v1::Value::kTimestampMicrosValue: out << value.timestamp_micros_value(); break;
    case ods::v1::Value::kFloatVectorValue: {
      out << "[";
      for (int i = 0; i < value.float_vector_value().values_size(); ++i) {
        out << (i ? ", " : "") << value.float_vector_value().values(i);
      }
      out << "]";
      break;
    }
    case ods::v1::Value::KIND_NOT_SET: out << "(unset)"; break;
  }
  return out.str();
}

// An ods.v1.FeatureValue: a scalar, or a list (last_n, top_k).
std::string Format(const ods::v1::FeatureValue& value) {
  if (!value.has_list()) return Format(value.value());
  std::string out = "[";
  for (int i = 0; i < value.list().values_size(); ++i) {
    out += (i ? ", " : "") + Format(value.list().values(i));
  }
  return out + "]";
}

// A context for one call: deadline, and the API key if there is one (docs/security.md).
std::unique_ptr<grpc::ClientContext> Context(const Options& options) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + options.timeout);
  if (!options.api_key.empty()) context->AddMetadata("authorization", "Bearer " + options.api_key);
  return context;
}

// Prints a failed call (method, gRPC status code and message) and returns exit code 1.
int Failed(std::string_view method, const grpc::Status& status) {
  std::cerr << method << ": call failed: code " << status.error_code() << ": "
            << status.error_message() << "\n";
  return 1;
}

int Run(const Options& options) {
  const std::string key = options.key.empty() ? "example-" + RandomHex(8) : options.key;
  // One channel for all calls: it is thread-safe and reconnects by itself.
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options.target, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + options.timeout)) {
    std::cerr << "cannot connect to odsd at " << options.target << " within "
              << options.timeout.count() << "ms\n";
    return 3;
  }
  auto store = ods::v1::Store::NewStub(channel);
  auto features = ods::v1::Features::NewStub(channel);

  // 1. Put: a record is a key and typed fields. A Put replaces the whole record and answers its
  //    new version.
  ods::v1::PutRequest put;
  put.set_table("user_profile");
  ods::v1::Record& record = *put.add_records();
  record.set_key(key);
  record.set_event_time_micros(NowMicros());
  (*record.mutable_fields())["age"].set_int64_value(42);
  (*record.mutable_fields())["country"].set_string_value("NL");
  ods::v1::PutResponse put_response;
  grpc::Status status = store->Put(Context(options).get(), put, &put_response);
  if (!status.ok()) return Failed("Put", status);
  std::cout << "Put     user_profile/" << key << " -> version " << put_response.versions(0) << "\n";

  // 2. Get: results[i] answers keys[i]; `found` tells a missing key from an empty record.
  ods::v1::GetRequest get;
  get.set_table("user_profile");
  get.add_keys(key);
  ods::v1::GetResponse get_response;
  status = store->Get(Context(options).get(), get, &get_response);
  if (!status.ok()) return Failed("Get", status);
  const ods::v1::GetResult& result = get_response.results(0);
  if (!result.found()) {
    std::cerr << "Get: user_profile/" << key << " not found right after its Put\n";
    return 1;
  }
  const auto& fields = result.record().fields();
  std::cout << "Get     user_profile/" << key << " -> age=" << Format(fields.at("age"))
            << " country=" << Format(fields.at("country")) << "\n";

  // 3. PushEvents: each event names its template and carries the template's key field,
  //    timestamp field (microseconds) and declared fields. A bad event is rejected alone, by
  //    index; the call still succeeds. event_id lets odsd drop a re-sent event as a duplicate.
  ods::v1::PushEventsRequest push;
  const std::vector<std::pair<double, std::string>> transactions = {
      {12.5, "m1"}, {30.25, "m2"}, {7.5, "m1"}};
  for (const auto& [amount, merchant] : transactions) {
    ods::v1::Event& event = *push.add_events();
    event.set_template_("transactions");  // protoc appends _ to C++ keywords
    event.set_event_id(RandomHex(32));
    auto& event_fields = *event.mutable_fields();
    event_fields["user_id"].set_string_value(key);
    event_fields["ts"].set_timestamp_micros_value(NowMicros());
    event_fields["amount"].set_double_value(amount);
    event_fields["merchant"].set_string_value(merchant);
  }
  ods::v1::PushEventsResponse pushed;
  status = features->PushEvents(Context(options).get(), push, &pushed);
  if (!status.ok()) return Failed("PushEvents", status);
  std::cout << "Push    " << push.events_size() << " transactions -> applied=" << pushed.applied()
            << " duplicates=" << pushed.duplicates() << " rejected=" << pushed.rejected_count()
            << "\n";
  for (const ods::v1::EventError& rejected : pushed.rejected()) {
    std::cerr << "  event " << rejected.index() << " rejected: " << rejected.message() << "\n";
  }
  if (pushed.rejected_count() != 0) return 1;

  // 4. GetOnlineFeatures: the answer is columnar, columns[f] for features[f], and within a column
  //    values[i] and statuses[i] for entities[i]. A ref is AGGREGATION@WINDOW, AGGREGATION (a
  //    single window) or TABLE:FIELD.
  ods::v1::GetOnlineFeaturesRequest request;
  request.add_entities(key);
  for (const char* ref : {"txn_count@1h", "txn_amount@1h", "merchants_7d", "user_profile:age"}) {
    request.add_features(ref);
  }
  ods::v1::FeaturesResponse answer;
  status = features->GetOnlineFeatures(Context(options).get(), request, &answer);
  if (!status.ok()) return Failed("GetOnlineFeatures", status);
  for (const ods::v1::FeatureColumn& column : answer.columns()) {
    std::cout << "Feature " << column.feature() << " = " << Format(column.values(0)) << " ("
              << ods::v1::FeatureStatus_Name(column.statuses(0)) << ")\n";
  }
  return 0;
}

int Usage(const char* program) {
  std::cerr << "usage: " << program
            << " [--target HOST:PORT] [--key USER] [--api-key KEY] [--timeout SECONDS]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 < argc && flag == "--target") {
      options.target = argv[++i];
    } else if (i + 1 < argc && flag == "--key") {
      options.key = argv[++i];
    } else if (i + 1 < argc && flag == "--api-key") {
      options.api_key = argv[++i];
    } else if (i + 1 < argc && flag == "--timeout") {
      const double seconds = std::strtod(argv[++i], nullptr);
      if (seconds <= 0) return Usage(argv[0]);
      options.timeout = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    } else {
      return Usage(argv[0]);
    }
  }
  return Run(options);
}
