// A LibTorch program that trains a small MLP with vramcache as PyTorch's CUDA allocator: one call
// to vramcache::torch::Install() before anything touches CUDA, then plain LibTorch code. PyTorch's
// own memory statistics answer through vramcache.
//
//   train_mlp [conf]     conf: vramcache configuration, e.g. "budget:2GiB" (default: none)
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "vramcache_torch.h"

int main(int argc, char** argv) {
  // First: PyTorch cannot swap its allocator once CUDA memory exists.
  vramcache::torch::Install(argc > 1 ? argv[1] : "");
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "train_mlp: no CUDA device\n");
    return 1;
  }
  torch::manual_seed(0);
  const torch::Device device(torch::kCUDA, 0);
  torch::nn::Sequential model(torch::nn::Linear(64, 256), torch::nn::ReLU(),
                              torch::nn::Linear(256, 10));
  model->to(device);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));

  const torch::Tensor data = torch::randn({512, 64}, device);
  const torch::Tensor target = data.slice(/*dim=*/1, 0, 10).argmax(/*dim=*/1);
  float first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(data), target);
    loss.backward();
    optimizer.step();
    last = loss.item<float>();
    if (step == 0) first = last;
  }

  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  std::printf("allocator: %s\n", c10::cuda::CUDACachingAllocator::name().c_str());
  std::printf("loss: %.4f -> %.4f\n", first, last);
  std::printf("allocated now %lld bytes, peak %lld bytes, reserved %lld bytes\n",
              static_cast<long long>(stats.allocated_bytes[0].current),
              static_cast<long long>(stats.allocated_bytes[0].peak),
              static_cast<long long>(stats.reserved_bytes[0].current));
  return last < first ? 0 : 1;
}
