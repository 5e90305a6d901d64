#include "admin_http.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <utility>

#include "ods/common/logging.h"

namespace ods::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kConnectionDeadline = std::chrono::seconds(5);

}  // namespace

struct AdminHttp::Impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::mutex metrics_mu;
  std::function<std::string()> metrics;  // guarded by metrics_mu
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  uint16_t bound_port = 0;  // constant after Start
  asio::steady_timer retry_timer{io};
  std::thread thread;

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // E.g. out of file descriptors: back off instead of spinning on the error.
        Logger("ods.server")->warn("admin HTTP accept failed: {}; retrying in 100 ms", ec.message());
        retry_timer.expires_after(std::chrono::milliseconds(100));
        retry_timer.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) Accept();
        });
        return;
      }
      Serve(std::make_shared<Session>(std::move(socket)));
      Accept();
    });
  }

  struct Session {
    explicit Session(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
  };

  void Serve(const std::shared_ptr<Session>& session) {
    session->stream.expires_after(kConnectionDeadline);
    http::async_read(session->stream, session->buffer, session->request,
                     [this, session](beast::error_code ec, size_t) {
                       if (ec) return;
                       Respond(*session);
                       http::async_write(session->stream, session->response,
                                         [session](beast::error_code, size_t) {
                                           beast::error_code ignored;
                                           session->stream.socket().shutdown(
                                               tcp::socket::shutdown_both, ignored);
                                         });
                     });
  }

  void Respond(Session& s) {
    auto& res = s.response;
    res.version(s.request.version());
    res.keep_alive(false);
    res.set(http::field::server, "odsd");
    const std::string_view target(s.request.target().data(), s.request.target().size());
    if (s.request.method() != http::verb::get) {
      res.result(http::status::method_not_allowed);
      res.body() = "only GET is supported\n";
    } else if (target == "/healthz") {
      const bool draining_now = draining.load();
      res.result(draining_now ? http::status::service_unavailable : http::status::ok);
      res.body() = draining_now ? "draining\n" : "ok\n";
    } else if (target == "/readyz") {
      const bool draining_now = draining.load();
      const bool ready_now = ready.load() && !draining_now;
      res.result(ready_now ? http::status::ok : http::status::service_unavailable);
      res.body() = draining_now ? "draining\n"
                   : ready_now  ? "ready\n"
                                : "starting: loading data (recovery)\n";
    } else if (target == "/metrics") {
      std::function<std::string()> render;
      {
        std::lock_guard<std::mutex> lock(metrics_mu);
        render = metrics;
      }
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4");
      res.body() = render ? render() : std::string();
    } else {
      res.result(http::status::not_found);
      res.body() = "unknown path; try /healthz, /readyz or /metrics\n";
    }
    res.prepare_payload();
  }
};

AdminHttp::AdminHttp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminHttp::~AdminHttp() {
  asio::post(impl_->io, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->retry_timer.cancel();
    impl_->io.stop();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

Result<std::unique_ptr<AdminHttp>> AdminHttp::Start(const std::string& listen,
                                                    std::function<std::string()> metrics) {
  auto impl = std::make_unique<Impl>();
  impl->metrics = std::move(metrics);
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = listen.substr(colon + 1);
  try {
    tcp::resolver resolver(impl->io);
    tcp::endpoint endpoint = *resolver.resolve(host, port).begin();
    impl->acceptor.open(endpoint.protocol());
    impl->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl->acceptor.bind(endpoint);
    impl->acceptor.listen();
    impl->bound_port = impl->acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    return UnavailableError("cannot listen on admin address '" + listen + "': " + e.what());
  }
  impl->Accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    try {
      raw->io.run();
    } catch (const std::exception& e) {
      Logger("ods.server")->error("admin HTTP stopped: {}", e.what());
    }
  });
  return std::unique_ptr<AdminHttp>(new AdminHttp(std::move(impl)));
}

uint16_t AdminHttp::port() const { return impl_->bound_port; }

void AdminHttp::SetMetrics(std::function<std::string()> metrics) {
  std::lock_guard<std::mutex> lock(impl_->metrics_mu);
  impl_->metrics = std::move(metrics);
}

void AdminHttp::SetReady() { impl_->ready.store(true); }

void AdminHttp::SetDraining() { impl_->draining.store(true); }

}  // namespace ods::server
