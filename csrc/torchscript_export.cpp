// C ABI shim over libtorch's C++ TorchScript API, used by src/export.rs.
//
// tch's `CModule::create_by_tracing` bakes weights into the graph as constants. Building the
// module here instead gives it real parameters named like `torch.nn.Sequential` names them
// (`0.weight`, `0.bias`, `2.weight`, ...), so Python can `load_state_dict` them into an
// `nn.Sequential` of `nn.Linear` and activation layers.
//
// Tensors cross the boundary as `const at::Tensor*`: torch-sys represents a tensor (`C_tensor`)
// as a heap-allocated `torch::Tensor`, i.e. `at::Tensor`.
//
// No C++ exception may unwind into Rust: every entry point runs through qnet_ffi_guard
// (ffi_error.h), which reports failure as a malloc'd message released with `qnet_free_string`.

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include "ffi_error.h"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>

namespace {

// A tensor the saved module may own: detached, CPU, float32, contiguous, and not aliasing the
// caller's (possibly CUDA, possibly still-training) parameter.
at::Tensor export_copy(const at::Tensor& t) {
  at::Tensor out = t.detach().to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  out = out.contiguous();
  out.set_requires_grad(false);
  return out;
}

torch::jit::Module build_mlp(const at::Tensor* const* weights, const at::Tensor* const* biases,
                             size_t n_layers, int activation) {
  if (n_layers == 0) {
    throw std::invalid_argument("an MLP needs at least one linear layer");
  }
  const char* act_fn = nullptr;
  switch (activation) {
    case 0:
      act_fn = "torch.relu";
      break;
    case 1:
      act_fn = "torch.tanh";
      break;
    default:
      throw std::invalid_argument("unknown activation code " + std::to_string(activation));
  }

  // Two classes in one compilation unit: the network, and `Linear`, whose type (parameters
  // `weight` and `bias`, method `forward`) all layers share, as scripted nn.Linear layers do.
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module net(c10::QualifiedName("__torch__.qnet.QNetwork"), cu);
  net.register_attribute("training", c10::BoolType::get(), false);
  c10::ClassTypePtr linear_type;

  std::ostringstream forward;
  forward << "def forward(self, x):\n";
  for (size_t i = 0; i < n_layers; ++i) {
    if (weights[i] == nullptr || biases[i] == nullptr || !weights[i]->defined() ||
        !biases[i]->defined()) {
      throw std::invalid_argument("layer " + std::to_string(i) + " has an undefined tensor");
    }
    const std::string child_name = std::to_string(2 * i);
    torch::jit::Module linear =
        linear_type ? torch::jit::Module(cu, linear_type)
                    : torch::jit::Module(c10::QualifiedName("__torch__.qnet.Linear"), cu);
    linear.register_attribute("training", c10::BoolType::get(), false);
    linear.register_parameter("weight", export_copy(*weights[i]), /*is_buffer=*/false);
    linear.register_parameter("bias", export_copy(*biases[i]), /*is_buffer=*/false);
    if (!linear_type) {
      linear.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
      linear_type = linear.type();
    }
    net.register_module(child_name, linear);

    forward << "    x = getattr(self, '" << child_name << "').forward(x)\n";
    if (i + 1 < n_layers) {
      forward << "    x = " << act_fn << "(x)\n";
    }
  }
  forward << "    return x\n";
  net.define(forward.str());
  return net;
}

}  // namespace

extern "C" {

void qnet_free_string(char* s) { std::free(s); }

int qnet_save_mlp(const char* path, const at::Tensor* const* weights,
                  const at::Tensor* const* biases, size_t n_layers, int activation,
                  const char* const* extra_keys, const char* const* extra_values,
                  const size_t* extra_value_lens, size_t n_extra, char** error_out) {
  return qnet_ffi_guard(error_out, [&] {
    if (path == nullptr || (n_layers > 0 && (weights == nullptr || biases == nullptr)) ||
        (n_extra > 0 &&
         (extra_keys == nullptr || extra_values == nullptr || extra_value_lens == nullptr))) {
      throw std::invalid_argument("qnet_save_mlp: null argument");
    }
    torch::jit::Module net = build_mlp(weights, biases, n_layers, activation);
    torch::jit::ExtraFilesMap extra;
    for (size_t i = 0; i < n_extra; ++i) {
      extra[extra_keys[i]] = std::string(extra_values[i], extra_value_lens[i]);
    }
    // Saving through a stream (rather than to a file name) names the archive's root folder
    // "archive" instead of after the temporary file the caller renames afterwards.
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw std::runtime_error(std::string("cannot create ") + path + ": " +
                               std::strerror(errno));
    }
    net.save(out, extra);
    out.close();
    if (!out) {
      throw std::runtime_error(std::string("cannot write ") + path);
    }
  });
}

// Reads extra file `key` of the TorchScript archive at `path` without loading the module.
// On success returns 0 and sets `*value_out` (malloc'd, NUL-terminated, `*len_out` bytes) or
// NULL when the archive has no such extra file.
int qnet_read_extra(const char* path, const char* key, char** value_out, size_t* len_out,
                    char** error_out) {
  return qnet_ffi_guard(error_out, [&] {
    if (path == nullptr || key == nullptr || value_out == nullptr || len_out == nullptr) {
      throw std::invalid_argument("qnet_read_extra: null argument");
    }
    *value_out = nullptr;
    *len_out = 0;
    caffe2::serialize::PyTorchStreamReader reader{std::string(path)};
    const std::string record = std::string("extra/") + key;
    if (!reader.hasRecord(record)) {
      return;
    }
    auto [data, size] = reader.getRecord(record);
    char* copy = qnet_malloc_copy(static_cast<const char*>(data.get()), size);
    if (copy == nullptr) {
      throw std::bad_alloc();
    }
    *value_out = copy;
    *len_out = size;
  });
}

}  // extern "C"
