#include "services/server_runner.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace specserve {

absl::Status ValidateListenAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", address, "' must be HOST:PORT, e.g. 127.0.0.1:50051"));
  }
  int port = -1;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen address '", address, "': the port must be a number in [0, 65535] (0: any free)"));
  }
  return absl::OkStatus();
}

std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

void BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForShutdownSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

absl::StatusOr<std::unique_ptr<ServerRunner>> ServerRunner::Start(
    const ServerOptions& options, const std::vector<grpc::Service*>& services,
    std::shared_ptr<prometheus::Registry> registry) {
  if (absl::Status st = ValidateListenAddress(options.listen); !st.ok()) return st;
  if (options.metrics_port < -1 || options.metrics_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--metrics-port %d must be in [0, 65535] (0: any free port) or -1 (off)",
                        options.metrics_port));
  }
  std::unique_ptr<ServerRunner> runner(new ServerRunner());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &runner->grpc_port_);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  for (grpc::Service* service : services) builder.RegisterService(service);
  runner->server_ = builder.BuildAndStart();
  if (runner->server_ == nullptr || runner->grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or not local?)"));
  }
  runner->service_names_ = options.service_names;
  runner->SetServing(true);
  if (options.metrics_port >= 0 && registry != nullptr) {
    const std::string bind = absl::StrCat(HostOf(options.listen), ":", options.metrics_port);
    try {
      runner->exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
          "listening_ports", bind, "num_threads", std::to_string(kMetricsThreads),
          "request_timeout_ms", std::to_string(kMetricsIdleTimeoutMs)});
    } catch (const std::exception& e) {
      runner->server_->Shutdown();
      return absl::UnavailableError(
          absl::StrCat("cannot serve /metrics on ", bind, ": ", e.what()));
    }
    runner->exposer_->RegisterCollectable(registry);
    const std::vector<int> ports = runner->exposer_->GetListeningPorts();
    runner->metrics_port_ = ports.empty() ? options.metrics_port : ports[0];
  }
  std::fprintf(stderr, "%s: listening on %s:%d (gRPC), metrics %s\n", options.name.c_str(),
               HostOf(options.listen).c_str(), runner->grpc_port_,
               runner->metrics_port_ >= 0 ? absl::StrCat("http://", HostOf(options.listen), ":",
                                                         runner->metrics_port_, "/metrics")
                                                .c_str()
                                          : "off");
  if (!options.port_file.empty()) {
    const std::string tmp = options.port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << runner->grpc_port_ << " " << runner->metrics_port_;
      if (options.http_port >= 0) out << " " << options.http_port;
      out << "\n";
      if (!out) return absl::InternalError(absl::StrCat("cannot write --port-file ", tmp));
    }
    if (std::rename(tmp.c_str(), options.port_file.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot write --port-file ", options.port_file));
    }
  }
  return runner;
}

void ServerRunner::SetServing(bool serving) {
  auto* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  for (const std::string& name : service_names_) health->SetServingStatus(name, serving);
}

void ServerRunner::Shutdown(double drain_seconds) {
  if (shut_down_) return;
  shut_down_ = true;
  SetServing(false);
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(drain_seconds * 1000));
  server_->Shutdown(deadline);
  server_->Wait();
}

ServerRunner::~ServerRunner() {
  if (server_ != nullptr) Shutdown(0);
}

}  // namespace specserve
