//! Code-generation overrides for `brasa import-onnx`: ONNX operators whose generated code calls
//! brasa's CPU kernels (`brasa::ops`) instead of burn's operator. Each `brasa::ops` function
//! falls back to burn's operator on other backends, so the generated module still runs
//! everywhere.

use burn_onnx::ext::quote::quote;
use burn_onnx::ext::{
    CodegenContext, Field, Node, NodeType, OpOverride, PackTensor, ProcessError, arg_to_ident,
    create_deferred_tensor, proc_macro2,
};
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

/// `Conv` (2-D) → [`brasa::ops::Conv2d`](../../brasa/ops/struct.Conv2d.html): the same
/// parameters under the same names as burn's `Conv2d`, run by brasa's packed-GEMM and
/// depthwise kernels on the CPU. A following `Relu` or `Clip` is fused afterwards
/// ([`super::import`]'s `fuse_activations`). A `Conv` whose weights are computed by the graph
/// keeps burn's functional convolution.
pub struct Conv2d;

impl Conv2d {
    fn node(node: &Node) -> Result<&onnx_ir::node::conv2d::Conv2dNode, ProcessError> {
        match node {
            Node::Conv2d(conv) => Ok(conv),
            _ => Err(ProcessError::Custom("brasa's Conv override got another node".into())),
        }
    }

    /// `[top, left, bottom, right]`, with `SAME_*` resolved against the static input size;
    /// `None` when that size is known only at run time.
    fn padding(conv: &onnx_ir::node::conv2d::Conv2dNode) -> Option<[usize; 4]> {
        let config = &conv.config;
        match config.auto_pad {
            AutoPad::NotSet => {
                let (top, left, bottom, right) = config.padding.as_tuple();
                Some([top, left, bottom, right])
            }
            AutoPad::Valid => Some([0; 4]),
            AutoPad::SameUpper | AutoPad::SameLower => {
                let spatial = onnx_ir::node::padding::static_spatial_dims(&conv.inputs.first()?.ty)?;
                let pads = |axis: usize| {
                    // ONNX Conv: total = max(0, (ceil(in / s) - 1)·s + (k - 1)·d + 1 - in);
                    // SAME_UPPER puts the odd one at the end, SAME_LOWER at the start.
                    let (size, k, s, d) = (
                        *spatial.get(axis)?,
                        config.kernel_size[axis],
                        config.stride[axis],
                        config.dilation[axis],
                    );
                    if s == 0 {
                        return None;
                    }
                    let total = (size.div_ceil(s).checked_sub(1)? * s + k.checked_sub(1)? * d + 1)
                        .saturating_sub(size);
                    let small = total / 2;
                    Some(if config.auto_pad == AutoPad::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    })
                };
                let ((top, bottom), (left, right)) = (pads(0)?, pads(1)?);
                Some([top, left, bottom, right])
            }
        }
    }

    fn static_weights(conv: &onnx_ir::node::conv2d::Conv2dNode) -> bool {
        conv.inputs.get(1).is_some_and(|w| w.is_static())
    }
}

impl OpOverride for Conv2d {
    fn target(&self) -> NodeType {
        NodeType::Conv2d
    }

    fn field(&self, node: &Node) -> Result<Option<Field>, ProcessError> {
        let conv = Self::node(node)?;
        if !Self::static_weights(conv) {
            return Ok(None);
        }
        let shape = conv.inputs[1].ty.static_shape_known().ok_or_else(|| {
            ProcessError::Custom(format!("Conv `{}`: the weight's shape is unknown", conv.name))
        })?;
        let config = &conv.config;
        let groups = config.groups;
        let (cin, cout) = (shape[1] * groups, shape[0]);
        let [kh, kw] = config.kernel_size;
        let [sy, sx] = config.stride;
        let [dy, dx] = config.dilation;
        let bias = conv.inputs.get(2).is_some_and(|b| !b.is_optional());
        let padding = match Self::padding(conv) {
            Some([top, left, bottom, right]) => {
                quote! { burn::nn::PaddingConfig2d::Explicit(#top, #left, #bottom, #right) }
            }
            None => quote! { burn::nn::PaddingConfig2d::Same },
        };
        let name = proc_macro2::Ident::new(&conv.name, proc_macro2::Span::call_site());
        Ok(Some(Field::new(
            &conv.name,
            quote! { brasa::ops::Conv2d },
            quote! {
                let #name = brasa::ops::Conv2d::from(
                    burn::nn::conv::Conv2dConfig::new([#cin, #cout], [#kh, #kw])
                        .with_stride([#sy, #sx])
                        .with_padding(#padding)
                        .with_dilation([#dy, #dx])
                        .with_groups(#groups)
                        .with_bias(#bias)
                        .init(device),
                );
            },
        )))
    }

    fn collect_tensors(&self, node: &Node, field_name: &str) -> Result<Vec<PackTensor>, ProcessError> {
        let conv = Self::node(node)?;
        if !Self::static_weights(conv) {
            return Ok(vec![]);
        }
        let mut tensors = Vec::new();
        for (index, param) in [(1, "weight"), (2, "bias")] {
            if let Some(input) = conv.inputs.get(index)
                && let Some(tensor) = create_deferred_tensor(input, &format!("{field_name}.{param}"))
            {
                tensors.push(tensor);
            }
        }
        Ok(tensors)
    }

    fn forward(
        &self,
        node: &Node,
        ctx: &mut CodegenContext<'_, '_>,
    ) -> Result<proc_macro2::TokenStream, ProcessError> {
        let conv = Self::node(node)?;
        let input = conv.inputs.first().ok_or_else(|| ProcessError::MissingInput("X".into()))?;
        let output = conv.outputs.first().ok_or_else(|| ProcessError::MissingOutput("Y".into()))?;
        let input = ctx.arg(input);
        let output = arg_to_ident(output);
        if Self::static_weights(conv) {
            let field = proc_macro2::Ident::new(&conv.name, proc_macro2::Span::call_site());
            return Ok(quote! { let #output = self.#field.forward(#input); });
        }
        let Some([top, left, bottom, right]) = Self::padding(conv) else {
            return Err(ProcessError::Custom(format!(
                "Conv `{}`: weights computed by the graph with SAME padding on a size known only at run time \
                 are not supported by brasa's kernel; import with --burn-ops",
                conv.name
            )));
        };
        let weight = ctx.arg(&conv.inputs[1]);
        let bias = match conv.inputs.get(2).filter(|b| !b.is_optional()) {
            Some(b) => {
                let b = ctx.arg(b);
                quote! { Some(#b) }
            }
            None => quote! { None },
        };
        let [sy, sx] = conv.config.stride;
        let [dy, dx] = conv.config.dilation;
        let groups = conv.config.groups;
        Ok(quote! {
            let #output = burn::tensor::module::conv2d(
                #input,
                #weight,
                #bias,
                burn::tensor::ops::ConvOptions::new_with_padding([#sy, #sx], [(#top, #bottom), (#left, #right)], [#dy, #dx], #groups),
            );
        })
    }
}
