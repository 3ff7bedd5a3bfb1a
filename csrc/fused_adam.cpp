// One Adam step over qnet's flat parameter buffer, through libtorch's fused kernel
// (at::_fused_adam_, the kernel behind torch.optim.Adam(fused=True), on CPU and CUDA).
//
// tch exposes no fused optimizer op; the unfused update is eight passes over the buffer and
// as many op dispatches, a large share of a small network's update. Same convention as
// torchscript_export.cpp (ffi_error.h): no C++ exception crosses into Rust.

#include <ATen/ATen.h>

#include "ffi_error.h"

extern "C" {

// `step` holds the number of this update (1 for the first), as a float scalar tensor on the
// parameters' device; the kernel reads it for the bias corrections and does not change it.
int qnet_fused_adam(const at::Tensor* param, const at::Tensor* grad, const at::Tensor* exp_avg,
                    const at::Tensor* exp_avg_sq, const at::Tensor* step, double lr,
                    double beta1, double beta2, double eps, char** error_out) {
  return qnet_ffi_guard(error_out, [&] {
    at::_fused_adam_({*param}, {*grad}, {*exp_avg}, {*exp_avg_sq}, {}, {*step}, lr, beta1,
                     beta2, /*weight_decay=*/0.0, eps, /*amsgrad=*/false,
                     /*maximize=*/false);
  });
}

}  // extern "C"
