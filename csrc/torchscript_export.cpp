// C ABI shim over libtorch's C++ TorchScript API, used by src/artifacts/export.rs.
//
// tch's `CModule::create_by_tracing` bakes weights into the graph as constants. Building the
// module here instead gives it real parameters named like the PyTorch module's (`0.weight`,
// `trunk.0.weight`, `value.bias`, ...), so Python can `load_state_dict` them into it.
//
// The shim knows no network: Rust (src/learn/qfunction/spec.rs) lists the modules (dotted path,
// class, TorchScript source of `forward`), children before their parents and the root (path
// "") last, and the parameters by dotted name; the shim assembles them.
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
#include <map>
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

std::string parent_of(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? std::string() : path.substr(0, dot);
}

std::string leaf_of(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

// Builds the modules in the order given (children first), each with the parameters whose
// dotted names sit directly under it and the children built before it; modules of one class
// share one TorchScript type, whose methods are defined once.
torch::jit::Module build_module(size_t n_modules, const char* const* paths,
                                const char* const* classes, const char* const* sources,
                                size_t n_params, const char* const* names,
                                const at::Tensor* const* params) {
  if (n_modules == 0 || std::string(paths[n_modules - 1]) != "") {
    throw std::invalid_argument("the module list must end with the root (path \"\")");
  }
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  std::map<std::string, c10::ClassTypePtr> types;
  std::map<std::string, torch::jit::Module> built;
  for (size_t m = 0; m < n_modules; ++m) {
    const std::string path = paths[m];
    const std::string cls = classes[m];
    auto known = types.find(cls);
    torch::jit::Module module =
        known != types.end()
            ? torch::jit::Module(cu, known->second)
            : torch::jit::Module(c10::QualifiedName("__torch__.qnet." + cls), cu);
    module.register_attribute("training", c10::BoolType::get(), false);
    for (size_t p = 0; p < n_params; ++p) {
      const std::string name = names[p];
      if (parent_of(name) != path) {
        continue;
      }
      if (params[p] == nullptr || !params[p]->defined()) {
        throw std::invalid_argument("parameter " + name + " is an undefined tensor");
      }
      module.register_parameter(leaf_of(name), export_copy(*params[p]), /*is_buffer=*/false);
    }
    for (auto it = built.begin(); it != built.end();) {
      if (!it->first.empty() && parent_of(it->first) == path) {
        module.register_module(leaf_of(it->first), it->second);
        it = built.erase(it);
      } else {
        ++it;
      }
    }
    if (known == types.end()) {
      module.define(sources[m]);
      types.emplace(cls, module.type());
    }
    built.emplace(path, module);
  }
  if (built.size() != 1) {
    throw std::invalid_argument("some modules have no parent in the module list");
  }
  return built.begin()->second;
}

}  // namespace

extern "C" {

void qnet_free_string(char* s) { std::free(s); }

// Serializes the module into memory: `*data_out` (malloc'd, `*len_out` bytes, released with
// qnet_free_string) is the archive, which Rust writes to disk through a descriptor it owns, so
// libtorch never opens a path another user could swap for a link.
int qnet_save_module(size_t n_modules, const char* const* module_paths,
                     const char* const* module_classes, const char* const* module_sources,
                     size_t n_params, const char* const* param_names,
                     const at::Tensor* const* params, const char* const* extra_keys,
                     const char* const* extra_values, const size_t* extra_value_lens,
                     size_t n_extra, char** data_out, size_t* len_out, char** error_out) {
  return qnet_ffi_guard(error_out, [&] {
    if (module_paths == nullptr || module_classes == nullptr || module_sources == nullptr ||
        data_out == nullptr || len_out == nullptr ||
        (n_params > 0 && (param_names == nullptr || params == nullptr)) ||
        (n_extra > 0 &&
         (extra_keys == nullptr || extra_values == nullptr || extra_value_lens == nullptr))) {
      throw std::invalid_argument("qnet_save_module: null argument");
    }
    *data_out = nullptr;
    *len_out = 0;
    torch::jit::Module net = build_module(n_modules, module_paths, module_classes,
                                          module_sources, n_params, param_names, params);
    torch::jit::ExtraFilesMap extra;
    for (size_t i = 0; i < n_extra; ++i) {
      extra[extra_keys[i]] = std::string(extra_values[i], extra_value_lens[i]);
    }
    // Saving through a stream (rather than to a file name) names the archive's root folder
    // "archive", whatever the file is called.
    std::ostringstream out(std::ios::binary);
    net.save(out, extra);
    const std::string bytes = out.str();
    char* copy = qnet_malloc_copy(bytes.data(), bytes.size());
    if (copy == nullptr) {
      throw std::bad_alloc();
    }
    *data_out = copy;
    *len_out = bytes.size();
  });
}

// Reads extra file `key` of the TorchScript archive held in memory (`data`, `len` bytes: read
// by Rust from a regular file) without loading the module. On success returns 0 and sets
// `*value_out` (malloc'd, NUL-terminated, `*len_out` bytes) or NULL when the archive has no such
// extra file.
int qnet_read_extra(const char* data, size_t len, const char* key, char** value_out,
                    size_t* len_out, char** error_out) {
  return qnet_ffi_guard(error_out, [&] {
    if (data == nullptr || key == nullptr || value_out == nullptr || len_out == nullptr) {
      throw std::invalid_argument("qnet_read_extra: null argument");
    }
    *value_out = nullptr;
    *len_out = 0;
    std::istringstream in(std::string(data, len), std::ios::binary);
    caffe2::serialize::PyTorchStreamReader reader{&in};
    const std::string record = std::string("extra/") + key;
    if (!reader.hasRecord(record)) {
      return;
    }
    auto [record_data, size] = reader.getRecord(record);
    char* copy = qnet_malloc_copy(static_cast<const char*>(record_data.get()), size);
    if (copy == nullptr) {
      throw std::bad_alloc();
    }
    *value_out = copy;
    *len_out = size;
  });
}

}  // extern "C"
