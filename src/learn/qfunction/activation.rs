//! Everything a hidden-layer nonlinearity means, in one place: its name in files, its
//! forward and backward on tensors and on host values (the host kernel), and its TorchScript
//! function.

use tch::Tensor;

use crate::config::Activation;

impl Activation {
    /// The name metadata and PyTorch code use (`relu`, `tanh`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }

    /// The activation of `z`.
    pub fn forward(self, z: &Tensor) -> Tensor {
        match self {
            Activation::Relu => z.relu(),
            Activation::Tanh => z.tanh(),
        }
    }

    /// dLoss/dz from dLoss/dy and the activation's output `y` (its derivative read off the
    /// output: relu `y > 0`, tanh `1 - y^2`).
    pub fn backward(self, grad_y: &Tensor, y: &Tensor) -> Tensor {
        match self {
            Activation::Relu => y.threshold_backward(grad_y, 0.0),
            Activation::Tanh => Tensor::tanh_backward(grad_y, y),
        }
    }

    /// [`Activation::forward`] on host values, in place (the host kernel).
    pub fn forward_in_place(self, z: &mut [f32]) {
        match self {
            Activation::Relu => z.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Tanh => z.iter_mut().for_each(|v| *v = v.tanh()),
        }
    }

    /// [`Activation::backward`] on host values: dLoss/dz from dLoss/dy and the output `y`,
    /// written over `grad_z`.
    pub fn backward_into(self, grad_y: &[f32], y: &[f32], grad_z: &mut Vec<f32>) {
        grad_z.clear();
        let pairs = grad_y.iter().zip(y);
        match self {
            Activation::Relu => grad_z.extend(pairs.map(|(g, &y)| if y > 0.0 { *g } else { 0.0 })),
            Activation::Tanh => grad_z.extend(pairs.map(|(g, &y)| g * (1.0 - y * y))),
        }
    }

    /// The TorchScript function that computes it.
    pub fn torchscript(self) -> &'static str {
        match self {
            Activation::Relu => "torch.relu",
            Activation::Tanh => "torch.tanh",
        }
    }
}
