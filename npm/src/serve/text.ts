/**
 * Text over the Open Inference Protocol: a sentence-embedding model served with its tokenizer
 * takes `text` (KServe `BYTES`, brasa's `string`: one UTF-8 string per row) and gives its
 * embeddings (`FP32 [rows, D]`). Requests are parsed and validated by the Rust KServe layer
 * against the signature below (UTF-8, length prefixes, the byte limit, the batch); each batch
 * the endpoint assembles is tokenised, padded and run by {@link createEmbedder}'s own code, so
 * texts from concurrent requests share forward passes and padding is per batch.
 * @module
 */
import { BrasaError, describe } from '../errors.js';
import type { WasmTensor } from '../glue.js';
import type { BrasaModel } from '../model.js';
import { createEmbedder, type EmbedderOptions } from '../tasks/embeddings.js';
import type { Signature, TensorTypes } from '../types.js';

/** Most UTF-8 bytes of one text when `maxTextBytes` is not given. */
export const DEFAULT_MAX_TEXT_BYTES = 16 * 1024;

/** What the endpoint serves in place of a model's own signature and run. */
export interface ServedTask {
  /** What requests send and responses give (parsing, metadata, configuration). */
  signature: Signature;
  /** One row at its largest: the model's elements (its `maxElements` limit counts these)
   * and the bytes of a request row in the binary format. */
  row: { elements: number; bytes: number };
  /** The model's named dims for one row at their largest (the memory plan measures there). */
  longest: Record<string, number>;
  /** The served outputs of a batch of served inputs. */
  run(feeds: Record<string, WasmTensor>): Promise<WasmTensor[]>;
}

/** The text options of a served model. */
export interface TextServing {
  tokenizer: EmbedderOptions['tokenizer'];
  maxTextBytes?: number;
  /** Texts per forward pass (the endpoint's `maxBatch`). */
  batchSize: number;
}

/** Check the text options of served model `name` when the handler is created. */
export function checkTextOptions(name: string, maxTextBytes: unknown): void {
  if (maxTextBytes !== undefined && (!Number.isSafeInteger(maxTextBytes) || (maxTextBytes as number) < 1)) {
    throw new BrasaError('invalid_spec', `served model ${name}: maxTextBytes must be a positive integer (bytes of UTF-8); got ${describe(maxTextBytes)}`);
  }
}

/**
 * Serve `model` (a sentence embedder: token ids and an attention mask in, one vector per row
 * out) as text in, embeddings out.
 * @throws BrasaError as {@link createEmbedder}: `invalid_spec` for a model that is no embedder,
 * `network` or `invalid_input` for its tokenizer.
 */
export async function textTask(model: BrasaModel<TensorTypes, TensorTypes>, options: TextServing): Promise<ServedTask> {
  const embedder = await createEmbedder(model, { tokenizer: options.tokenizer, batchSize: options.batchSize });
  const maxBytes = options.maxTextBytes ?? DEFAULT_MAX_TEXT_BYTES;
  const meta = (model.info.metadata ?? {}) as { output?: string; input_ids?: string };
  const { outputs, inputs } = model.signature;
  const output = outputs.find((t) => t.name === meta.output) ?? outputs[0];
  const ids = inputs.find((t) => t.name === (meta.input_ids ?? 'input_ids')) ?? inputs[0];
  const sequence = ids.dims[1];
  const longest: Record<string, number> = {};
  if (typeof sequence === 'string') longest[sequence] = embedder.maxLength;
  else if (typeof sequence === 'object' && sequence !== null) longest[sequence.name] = embedder.maxLength;
  const signature: Signature = {
    inputs: [
      {
        name: 'text',
        dtype: 'string',
        dims: ['batch'],
        description: `UTF-8 text, one per row: tokenised with the model's tokenizer, truncated at ${embedder.maxLength} tokens`,
        maxBytes,
      },
    ],
    outputs: [{ name: output.name, dtype: 'float32', dims: ['batch', embedder.dimensions], description: output.description ?? '' }],
  };
  if (!signature.outputs[0].description) delete signature.outputs[0].description;
  return {
    signature,
    // Token ids and mask: two int64 values per token.
    row: { elements: inputs.length * embedder.maxLength, bytes: 4 + maxBytes },
    longest,
    async run(feeds) {
      const text = feeds.text;
      if (!text || !Array.isArray(text.data)) throw new BrasaError('internal', 'a text batch without its strings');
      const { data, dims } = await embedder.embed(text.data as string[]);
      return [{ name: output.name, dtype: 'float32', dims: [...dims], data }];
    },
  };
}
