// vramcache-replay: replays allocation traces through vramcache (see replay_tool.h). This file
// only binds the real GPU opener and the process's streams to the tool.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "allocator/api/device_factory.h"
#include "bench/replay/replay_tool.h"

namespace {

// GPU 0 through the API's device factory, which explains itself when the build has no CUDA or
// the machine no GPU. The capacity is left to the replay, which turns it into a budget.
absl::StatusOr<std::unique_ptr<vramcache::Device>> OpenCudaReplayDevice(
    const vramcache::AllocatorConfig& config, std::optional<std::size_t> /*capacity*/) {
  vramcache::AllocatorConfig cuda_config = config;
  cuda_config.device = vramcache::DeviceKind::kCuda;
  absl::StatusOr<std::vector<std::unique_ptr<vramcache::Device>>> devices =
      vramcache::OpenDevices(cuda_config);
  if (!devices.ok()) return devices.status();
  if (devices->empty()) return absl::FailedPreconditionError("no CUDA device is usable");
  return std::move(devices->front());
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  vramcache::ReplayToolEnvironment environment;
  environment.open_cuda_device = OpenCudaReplayDevice;
  std::string out;
  std::string err;
  const int status = vramcache::RunReplayTool(args, environment, &out, &err);
  std::fputs(out.c_str(), stdout);
  std::fputs(err.c_str(), stderr);
  return status;
}
