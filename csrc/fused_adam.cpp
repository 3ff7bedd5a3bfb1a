// One Adam step over qnet's flat parameter buffer, through libtorch's fused kernel
// (at::_fused_adam_, the kernel behind torch.optim.Adam(fused=True), on CPU and CUDA).
//
// tch exposes no fused optimizer op; the unfused update is eight passes over the buffer and
// as many op dispatches, a large share of a small network's update. Same convention as
// torchscript_export.cpp: no C++ exception crosses into Rust; errors come back as a
// malloc'd message freed with qnet_free_string.

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <exception>

extern "C" {

// `step` holds the number of this update (1 for the first), as a float scalar tensor on the
// parameters' device; the kernel reads it for the bias corrections and does not change it.
int qnet_fused_adam(const at::Tensor* param, const at::Tensor* grad, const at::Tensor* exp_avg,
                    const at::Tensor* exp_avg_sq, const at::Tensor* step, double lr,
                    double beta1, double beta2, double eps, char** error_out) {
  try {
    at::_fused_adam_({*param}, {*grad}, {*exp_avg}, {*exp_avg_sq}, {}, {*step}, lr, beta1,
                     beta2, /*weight_decay=*/0.0, eps, /*amsgrad=*/false,
                     /*maximize=*/false);
    return 0;
  } catch (const std::exception& e) {
    if (error_out != nullptr) *error_out = strdup(e.what());
  } catch (...) {
    if (error_out != nullptr) *error_out = strdup("unknown C++ exception in fused Adam");
  }
  return 1;
}

}  // extern "C"
