/**
 * Sentence embeddings on top of any model that takes token ids and an attention mask and
 * gives one vector per sentence (a BERT-style encoder with pooling, such as
 * all-MiniLM-L6-v2): text in, `[N, D]` embeddings out. Tokenization is Hugging Face's
 * tokenizers.js (`@huggingface/tokenizers`) on the model's own `tokenizer.json`, loaded only
 * when a text task is created.
 * @module
 */
import { BrasaError, describe, message } from '../errors.js';
import type { BrasaModel } from '../model.js';
import { runtimeOf } from '../internal.js';
import { Tensor, toFloat32 } from '../tensor.js';
import type { Backend, Dim, TensorTypes } from '../types.js';

/** What a sentence-embedding model's package says in its `metadata`. */
export interface SentenceEmbeddingMetadata {
  task: 'sentence-embedding';
  /** The input taking token ids (int64 `[batch, sequence]`). Default `input_ids`. */
  input_ids?: string;
  /** The input taking the attention mask (int64 `[batch, sequence]`). Default `attention_mask`. */
  attention_mask?: string;
  /** The output holding the embeddings (`[batch, D]`). Default the model's only output. */
  output?: string;
  /** The longest input, in tokens with the special ones, the model was trained to take. */
  max_length?: number;
  /** Whether the output rows are L2-normalised (then a dot product is the cosine similarity). */
  normalized?: boolean;
}

/** The part of a tokenizer {@link createEmbedder} uses: `@huggingface/tokenizers`' `Tokenizer`. */
export interface TextTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  /** Token → id (`@huggingface/tokenizers` has it): lets the embedder check the ids fit the model. */
  get_vocab?(withAddedTokens?: boolean): Map<string, number>;
}

/** Options of {@link createEmbedder}; each but `tokenizer` overrides the model's metadata. */
export interface EmbedderOptions {
  /**
   * The model's tokenizer: the URL of its `tokenizer.json` (resolved and fetched as
   * `loadModel` does weights: against the page, or a path under Node), the parsed JSON, or a
   * ready `Tokenizer` of `@huggingface/tokenizers`. Default: the running registry version's
   * asset `tokenizer` (`brasa registry publish --asset tokenizer=tokenizer.json`).
   */
  tokenizer?: string | URL | Record<string, unknown> | TextTokenizer;
  /**
   * `tokenizer_config.json`, parsed (optional; tokenizers.js reads a few settings from it).
   * Default: the version's asset `tokenizer_config`, when it has one.
   */
  tokenizerConfig?: Record<string, unknown>;
  /**
   * Longest input in tokens, the special ones included; longer texts are truncated (see
   * {@link Embedder.embed}). Default the metadata's `max_length`, else the longest sequence the
   * signature accepts.
   */
  maxLength?: number;
  /** Sentences per `model.run`. Default 32. */
  batchSize?: number;
  /**
   * Pad each batch's sequence length up to a multiple of this (Hugging Face's
   * `pad_to_multiple_of`). On WebGPU every new input shape compiles and tunes new kernels
   * (seconds each on a software adapter), so fewer distinct lengths pay off: default 16 there,
   * 1 on the CPU. Padding is masked: results do not change.
   */
  padToMultipleOf?: number;
  inputIds?: string;
  attentionMask?: string;
  output?: string;
}

/** Token ids of a batch of texts, padded into the model's feeds. */
export interface TokenizedBatch {
  /** int64 `[N, sequence]`, padded with 0 after each text's tokens. */
  inputIds: BigInt64Array;
  /** int64 `[N, sequence]`: 1 over each text's tokens, 0 over padding. */
  attentionMask: BigInt64Array;
  /** `[N, sequence]`: sequence is the longest text's token count, rounded up to `padToMultipleOf`. */
  dims: [number, number];
  /** Tokens of each text, special ones included, after truncation. */
  lengths: Uint32Array;
  /** Indices of the texts that were truncated. */
  truncated: number[];
}

/** What {@link Embedder.embed} resolves to. */
export interface Embeddings {
  /** Row-major `[N, D]`, row k for text k. */
  data: Float32Array;
  dims: [number, number];
  /** Tokens of each text, special ones included, after truncation. */
  tokens: Uint32Array;
  /** Indices of the texts longer than `maxLength` tokens (their ends were dropped). */
  truncated: number[];
  backend: Backend;
  /** Milliseconds of model runs (tokenization excluded). */
  latencyMs: number;
}

/** A sentence embedder over a model. */
export interface Embedder {
  readonly model: BrasaModel;
  /** Width of an embedding. */
  readonly dimensions: number;
  /** Longest input in tokens (special ones included); longer texts are truncated. */
  readonly maxLength: number;
  /** Whether rows are L2-normalised (dot product = cosine similarity). */
  readonly normalized: boolean;
  /**
   * Token ids of `texts`, as the model will see them. Truncation: a text whose tokens with
   * the special ones exceed `maxLength` keeps its first `maxLength - specials` tokens and
   * then the closing special tokens (Hugging Face tokenizers' `longest_first` on one
   * sequence, as sentence-transformers truncates).
   * @throws BrasaError `invalid_input` when a text is not a string.
   */
  tokenize(texts: readonly string[]): TokenizedBatch;
  /**
   * Embeddings of `texts` (a string is a batch of one). Texts are sorted by length and run
   * in batches of at most `batchSize`, each padded to its longest and ended before a text
   * under half that length, so at most half of a batch is padding; rows come back in the
   * order of `texts`.
   * @throws BrasaError `invalid_input` when a text is not a string; as {@link BrasaModel.run}.
   */
  embed(texts: string | readonly string[]): Promise<Embeddings>;
}

/**
 * A sentence embedder over `model`, configured by its package's metadata
 * (`{ task: 'sentence-embedding', input_ids, attention_mask, output, max_length }`) and
 * `options`.
 *
 * ```js
 * const model = await loadModel(minilm, { weights: '/models/minilm.bpk' });
 * const embedder = await createEmbedder(model, { tokenizer: '/models/minilm/tokenizer.json' });
 * const { data, dims } = await embedder.embed(['A man is eating food.', 'A man eats bread.']);
 * // dims [2, 384]; rows are L2-normalised, so their dot product is the cosine similarity.
 * ```
 * @throws BrasaError `invalid_spec` when the model's inputs or output are not those of an
 * embedder; `network` when the tokenizer cannot be fetched; `invalid_input` when it is not a
 * tokenizer.json.
 */
export async function createEmbedder(model: BrasaModel<TensorTypes, TensorTypes>, options: EmbedderOptions = {}): Promise<Embedder> {
  if (!options || typeof options !== 'object') throw new BrasaError('invalid_spec', `createEmbedder's options must be an object; got ${describe(options)}`);
  if (model.disposed) throw new BrasaError('disposed', `model ${model.name} was disposed`);
  const raw = model.info.metadata;
  const meta: Partial<SentenceEmbeddingMetadata> =
    raw && typeof raw === 'object' && (raw as { task?: unknown }).task === 'sentence-embedding' ? (raw as Partial<SentenceEmbeddingMetadata>) : {};
  const { inputs, outputs } = model.signature;
  const findInput = (wanted: string, what: string) => {
    const spec = inputs.find((t) => t.name === wanted);
    if (!spec) throw new BrasaError('invalid_spec', `model ${model.name} has no input \`${wanted}\` for the ${what}; it has: ${inputs.map((t) => t.name).join(', ')}`);
    if (spec.dtype !== 'int64' && spec.dtype !== 'int32') throw new BrasaError('invalid_spec', `input \`${wanted}\` of model ${model.name} is ${spec.dtype}; the ${what} must be int64 or int32`);
    if (spec.dims.length !== 2) throw new BrasaError('invalid_spec', `input \`${wanted}\` of model ${model.name} has ${spec.dims.length} dims; the ${what} must be [batch, sequence]`);
    return spec;
  };
  const idsSpec = findInput(options.inputIds ?? meta.input_ids ?? 'input_ids', 'token ids');
  const maskSpec = findInput(options.attentionMask ?? meta.attention_mask ?? 'attention_mask', 'attention mask');
  if (inputs.length !== 2) throw new BrasaError('invalid_spec', `model ${model.name} takes ${inputs.length} inputs (${inputs.map((t) => t.name).join(', ')}); an embedder feeds only token ids and an attention mask`);
  const outputName = options.output ?? meta.output ?? (outputs.length === 1 ? outputs[0].name : undefined);
  const outputSpec = outputs.find((t) => t.name === outputName);
  if (!outputSpec) throw new BrasaError('invalid_spec', `say which output of model ${model.name} holds the embeddings (output); it has: ${outputs.map((t) => t.name).join(', ')}`);
  const width = outputSpec.dims.length === 2 && typeof outputSpec.dims[1] === 'number' ? outputSpec.dims[1] : NaN;
  if (!Number.isInteger(width)) throw new BrasaError('invalid_spec', `output \`${outputSpec.name}\` of model ${model.name} is not [batch, D] with a fixed D`);

  const longest = upperBound(idsSpec.dims[1]);
  const maxLength = options.maxLength ?? (typeof meta.max_length === 'number' ? meta.max_length : longest);
  if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > longest) {
    throw new BrasaError('invalid_spec', `maxLength must be an integer from 1 to ${longest} (the longest sequence model ${model.name} takes); got ${describe(maxLength)}`);
  }
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new BrasaError('invalid_spec', `batchSize must be a positive integer; got ${describe(batchSize)}`);
  const multiple = options.padToMultipleOf ?? (model.backend === 'webgpu' ? 16 : 1);
  if (!Number.isInteger(multiple) || multiple < 1) throw new BrasaError('invalid_spec', `padToMultipleOf must be a positive integer; got ${describe(multiple)}`);

  // How many special tokens the post-processor adds to one sequence, and where: the ids of a
  // text are `prefix + content + suffix`.
  const specialsOf = (t: TextTokenizer) => {
    const n = t.encode('').ids.length - t.encode('', { add_special_tokens: false }).ids.length;
    if (n < 0 || n >= maxLength) throw new BrasaError('invalid_spec', `maxLength ${maxLength} leaves no room for text after the tokenizer's ${n} special tokens`);
    return n;
  };
  // Ids the tokenizer can give beyond what the model takes mean another model's tokenizer.
  const ids = idsSpec.range;
  const checkVocabulary = (t: TextTokenizer) => {
    const vocab = t.get_vocab?.(true);
    if (!ids || !vocab) return;
    let top = -1;
    for (const id of vocab.values()) top = Math.max(top, id);
    if (top > ids[1]) {
      throw new BrasaError('invalid_spec', `the tokenizer gives ids up to ${top}, but model ${model.name} takes ids up to ${ids[1]} (\`${idsSpec.name}\`): is it another model's tokenizer?`);
    }
  };
  let tokenizer = await tokenizerOf(model, options);
  checkVocabulary(tokenizer);
  let specials = specialsOf(tokenizer);
  // A tokenizer from the version's assets follows the model to the versions it switches to;
  // `embed` waits for it.
  let switching: Promise<void> = Promise.resolve();
  if (options.tokenizer === undefined) {
    model.addEventListener('updated', () => {
      switching = tokenizerOf(model, options).then(
        (next) => {
          checkVocabulary(next);
          specials = specialsOf(next);
          tokenizer = next;
        },
        () => undefined, // the version's tokenizer unreadable: keep the one that works
      );
    });
  }
  const int32 = idsSpec.dtype === 'int32';

  const encode = (text: unknown, index: number): { ids: number[]; truncated: boolean } => {
    if (typeof text !== 'string') throw new BrasaError('invalid_input', `text ${index} is ${describe(text)}, not a string`);
    const full = tokenizer.encode(text).ids;
    // A tokenizer.json whose unknown token is not in its vocabulary gives no id for it.
    if (!full.every(Number.isSafeInteger)) throw new BrasaError('invalid_input', `the tokenizer gave no id for part of text ${index} (${JSON.stringify(text.slice(0, 40))}): its unknown token is missing from its vocabulary`);
    if (full.length <= maxLength) return { ids: full, truncated: false };
    const content = tokenizer.encode(text, { add_special_tokens: false }).ids;
    const prefix = prefixLength(full, content);
    const kept = content.slice(0, maxLength - specials);
    return { ids: [...full.slice(0, prefix), ...kept, ...full.slice(prefix + content.length)], truncated: true };
  };

  const pad = (rows: number[][]): TokenizedBatch => {
    const longestRow = Math.max(1, ...rows.map((r) => r.length));
    // Never past what the model takes, even when that is not a multiple.
    const seq = Math.min(Math.ceil(longestRow / multiple) * multiple, Math.max(longestRow, upperBound(idsSpec.dims[1])));
    const inputIds = new BigInt64Array(rows.length * seq);
    const attentionMask = new BigInt64Array(rows.length * seq);
    rows.forEach((row, r) => {
      for (let k = 0; k < row.length; k++) {
        inputIds[r * seq + k] = BigInt(row[k]);
        attentionMask[r * seq + k] = 1n;
      }
    });
    return { inputIds, attentionMask, dims: [rows.length, seq], lengths: Uint32Array.from(rows, (r) => r.length), truncated: [] };
  };

  const feedsOf = (batch: TokenizedBatch) => {
    const tensor = (data: BigInt64Array) => (int32 ? new Tensor('int32', Int32Array.from(data, Number), batch.dims) : new Tensor('int64', data, batch.dims));
    return { [idsSpec.name]: tensor(batch.inputIds), [maskSpec.name]: tensor(batch.attentionMask) };
  };

  const tokenizeAll = (texts: readonly string[]) => {
    if (!Array.isArray(texts)) throw new BrasaError('invalid_input', `texts must be a string or an array of strings; got ${describe(texts)}`);
    return texts.map(encode);
  };

  return {
    model,
    dimensions: width,
    maxLength,
    normalized: meta.normalized === true,
    tokenize(texts) {
      const encoded = tokenizeAll(texts);
      const batch = pad(encoded.map((e) => e.ids));
      batch.truncated = encoded.flatMap((e, k) => (e.truncated ? [k] : []));
      return batch;
    },
    async embed(input) {
      await switching;
      const texts = typeof input === 'string' ? [input] : input;
      const encoded = tokenizeAll(texts);
      const data = new Float32Array(encoded.length * width);
      // Longest first: similar lengths share a batch, so little of it is padding.
      const order = encoded.map((_, k) => k).sort((a, b) => encoded[b].ids.length - encoded[a].ids.length);
      let latencyMs = 0;
      for (let start = 0; start < order.length; ) {
        // A batch ends at batchSize texts, or before a text under half its longest one's
        // length: then at most half of a batch is padding.
        let end = start + 1;
        while (end < order.length && end - start < batchSize && encoded[order[end]].ids.length * 2 >= encoded[order[start]].ids.length) end++;
        const rows = order.slice(start, end);
        start = end;
        const fetches = await model.run(feedsOf(pad(rows.map((k) => encoded[k].ids))));
        latencyMs += model.lastLatencyMs ?? 0;
        const out = fetches[outputSpec.name];
        if (!out || out.dims.length !== 2 || out.dims[0] !== rows.length || out.dims[1] !== width) {
          throw new BrasaError('execution', `model ${model.name} gave output \`${outputSpec.name}\` of dims [${out?.dims.join(', ') ?? ''}], expected [${rows.length}, ${width}]`);
        }
        const values = toFloat32(out);
        rows.forEach((k, r) => data.set(values.subarray(r * width, (r + 1) * width), k * width));
      }
      return {
        data,
        dims: [encoded.length, width],
        tokens: Uint32Array.from(encoded, (e) => e.ids.length),
        truncated: encoded.flatMap((e, k) => (e.truncated ? [k] : [])),
        backend: model.backend,
        latencyMs,
      };
    },
  };
}

/** The largest value a signature dim takes (a fixed size, or a bounded dim's max). */
function upperBound(dim: Dim): number {
  if (typeof dim === 'number') return dim;
  if (typeof dim === 'object' && dim !== null && typeof dim.max === 'number') return dim.max;
  return Number.MAX_SAFE_INTEGER;
}

/** Where `content` starts inside `full` (the post-processor's special tokens before it). */
function prefixLength(full: number[], content: number[]): number {
  for (let p = 0; p + content.length <= full.length; p++) {
    if (content.every((id, k) => full[p + k] === id)) return p;
  }
  throw new BrasaError('internal', 'the tokenizer adds tokens inside a text, not only around it: cannot truncate it');
}

async function tokenizerOf(model: BrasaModel<TensorTypes, TensorTypes>, options: EmbedderOptions): Promise<TextTokenizer> {
  const source = options.tokenizer;
  if (source && typeof source === 'object' && typeof (source as TextTokenizer).encode === 'function') return source as TextTokenizer;
  const parse = (bytes: Uint8Array, where: string) => {
    try {
      return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    } catch (err) {
      throw new BrasaError('invalid_input', `the tokenizer ${where} is not JSON: ${message(err)}`, { cause: err });
    }
  };
  let json: unknown = source;
  let config = options.tokenizerConfig;
  if (source === undefined) {
    if (!model.assets.includes('tokenizer')) {
      throw new BrasaError('invalid_spec', `createEmbedder needs a tokenizer: model ${model.name}${model.version ? ` ${model.version}` : ''} has no \`tokenizer\` asset, so pass one (its tokenizer.json's URL, or the parsed JSON)`);
    }
    json = parse(await model.asset('tokenizer'), `asset of ${model.name} ${model.version}`);
    if (config === undefined && model.assets.includes('tokenizer_config')) config = parse(await model.asset('tokenizer_config'), 'config asset') as Record<string, unknown>;
  } else if (typeof source === 'string' || source instanceof URL) {
    json = parse(await runtimeOf(model).fetchBytes(source, 'tokenizer'), `at ${String(source)}`);
  }
  if (!json || typeof json !== 'object' || !('model' in json)) {
    throw new BrasaError('invalid_input', `tokenizer must be a tokenizer.json (its URL, or the parsed object with a \`model\`), or a Tokenizer; got ${describe(json)}`);
  }
  const { Tokenizer } = await import('@huggingface/tokenizers');
  try {
    return new Tokenizer(json, config ?? {});
  } catch (err) {
    throw new BrasaError('invalid_input', `not a tokenizer.json tokenizers.js can read: ${message(err)}`, { cause: err });
  }
}
