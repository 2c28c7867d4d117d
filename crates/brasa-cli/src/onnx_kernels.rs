//! Code-generation overrides for `brasa import-onnx`: ONNX operators whose generated code calls
//! brasa's CPU kernels (`brasa::ops`) instead of burn's operator. Each `brasa::ops` function
//! falls back to burn's operator on other backends, so the generated module still runs
//! everywhere.

use burn_onnx::ext::quote::quote;
use burn_onnx::ext::{CodegenContext, Node, NodeType, OpOverride, ProcessError, arg_to_ident, proc_macro2};
use onnx_ir::padding::AutoPad;

/// `MaxPool` (2-D, no indices output, no dilation, floor rounding) → `brasa::ops::max_pool2d`.
/// burn-flex pools through a 3-D pooling that also computes indices: a quarter of
/// SqueezeNet's CPU time.
pub struct MaxPool2d;

impl OpOverride for MaxPool2d {
    fn target(&self) -> NodeType {
        NodeType::MaxPool2d
    }

    fn forward(
        &self,
        node: &Node,
        ctx: &mut CodegenContext<'_, '_>,
    ) -> Result<proc_macro2::TokenStream, ProcessError> {
        let Node::MaxPool2d(pool) = node else {
            return Err(ProcessError::Custom("brasa's MaxPool override got another node".into()));
        };
        let unsupported = |what: &str| {
            Err(ProcessError::Custom(format!(
                "MaxPool `{}`: {what} is not supported by brasa's kernel; import with --burn-ops",
                pool.name
            )))
        };
        let config = &pool.config;
        if pool.outputs.get(1).is_some_and(|indices| !indices.is_optional()) {
            return unsupported("the indices output");
        }
        if config.dilation != [1, 1] {
            return unsupported("dilation");
        }
        if config.ceil_mode {
            return unsupported("ceil_mode");
        }
        if !matches!(config.auto_pad, AutoPad::NotSet | AutoPad::Valid) {
            return unsupported("auto_pad SAME_*");
        }
        let (top, left, bottom, right) = config.padding.as_tuple();
        let [kh, kw] = config.kernel_size;
        let [sy, sx] = config.strides;
        let input = pool.inputs.first().ok_or_else(|| ProcessError::MissingInput("X".into()))?;
        let output = pool.outputs.first().ok_or_else(|| ProcessError::MissingOutput("Y".into()))?;
        let input = ctx.arg(input);
        let output = arg_to_ident(output);
        Ok(quote! {
            let #output = brasa::ops::max_pool2d(#input, [#kh, #kw], [#sy, #sx], [#top, #left, #bottom, #right]);
        })
    }
}
