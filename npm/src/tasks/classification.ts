/**
 * Classification on top of any model: which output holds the class scores, whether to
 * softmax them, the class labels — read from the package's metadata, overridable.
 * @module
 */
import { BrasaError, describe } from '../errors.js';
import type { BrasaModel } from '../model.js';
import { toFloat32 } from '../tensor.js';
import type { ClassifierInput, Feed, Feeds, Prediction, TensorTypes } from '../types.js';

/** What a classification model's package says in its `metadata`. */
export interface ClassificationMetadata {
  task: 'classification';
  /** The output holding the class scores; default the model's only output. */
  output?: string;
  /** The input a bare array feeds; default the model's only input. */
  input?: string;
  /** `softmax` (the output is logits) or `none` (it is probabilities already). Default `softmax`. */
  activation?: 'softmax' | 'none';
  /** Class names, by index. */
  labels?: string[];
}

/** Options of {@link createClassifier}; each overrides the model's metadata. */
export interface ClassifierOptions {
  input?: string;
  output?: string;
  activation?: 'softmax' | 'none';
  labels?: string[];
}

/** A classifier over a model. */
export interface Classifier {
  readonly model: BrasaModel;
  /** The input a bare array feeds. */
  readonly input: string;
  /** The output read as class scores. */
  readonly output: string;
  readonly activation: 'softmax' | 'none';
  /** Class names by index (empty when the model has none). */
  readonly labels: string[];
  /**
   * Classify a batch. `input` is a flat row-major `Float32Array` or array of numbers (dims
   * from the input's signature, the batch from the length: MNIST takes 784 values per image),
   * a tensor `{ dtype, dims, data }`, or the model's full feeds by name.
   *
   * Resolves to `logits` and `probabilities` (`Float32Array`, `[batch, classes]`), `labels`
   * (the arg-max of each row, `Uint32Array`), `label` (= `labels[0]`), `batch`, `classes`,
   * `backend`, `latencyMs`.
   * @throws BrasaError as {@link BrasaModel.run}; `invalid_input` when the output is not numeric.
   */
  run(input: ClassifierInput): Promise<Prediction>;
}

/**
 * A classifier over `model`, configured by its package's metadata
 * (`{ task: 'classification', output, activation, labels }`) and `options`.
 *
 * ```js
 * const classifier = createClassifier(await loadModel(mnist, { weights }));
 * const { label, probabilities } = await classifier.run(pixels);
 * ```
 * @throws BrasaError `invalid_spec` when the input or output is ambiguous or unknown.
 */
export function createClassifier(model: BrasaModel<TensorTypes, TensorTypes>, options: ClassifierOptions = {}): Classifier {
  const raw = model.info.metadata;
  const meta: Partial<ClassificationMetadata> =
    raw && typeof raw === 'object' && ((raw as { task?: unknown }).task === undefined || (raw as { task?: unknown }).task === 'classification')
      ? (raw as Partial<ClassificationMetadata>)
      : {};
  const pick = (kind: 'input' | 'output', names: string[], wanted: string | undefined): string => {
    if (wanted !== undefined) {
      if (!names.includes(wanted)) throw new BrasaError('invalid_spec', `model ${model.name} has no ${kind} \`${wanted}\`; it has: ${names.join(', ')}`);
      return wanted;
    }
    if (names.length !== 1) throw new BrasaError('invalid_spec', `model ${model.name} has ${names.length} ${kind}s (${names.join(', ')}); say which one the classifier uses (${kind})`);
    return names[0];
  };
  const input = pick('input', model.inputNames, options.input ?? meta.input);
  const output = pick('output', model.outputNames, options.output ?? meta.output);
  const activation = options.activation ?? meta.activation ?? 'softmax';
  if (activation !== 'softmax' && activation !== 'none') throw new BrasaError('invalid_spec', `activation must be 'softmax' or 'none'; got ${describe(activation)}`);
  const labels = options.labels ?? (Array.isArray(meta.labels) ? meta.labels.map(String) : []);

  return {
    model,
    input,
    output,
    activation,
    labels,
    async run(value: ClassifierInput): Promise<Prediction> {
      const isFeeds = typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !Array.isArray(value) && !('data' in value && 'dtype' in value);
      const fetches = await model.run(isFeeds ? (value as Feeds) : ({ [input]: value as Feed } as Feeds));
      const tensor = fetches[output];
      if (!tensor) throw new BrasaError('execution', `model ${model.name} gave no output \`${output}\``);
      if (tensor.dtype === 'bool') throw new BrasaError('invalid_input', `output \`${output}\` is boolean, not class scores`);
      const logits = toFloat32(tensor);
      const batch = tensor.dims.length >= 2 ? tensor.dims[0] : 1;
      const classes = batch === 0 ? 0 : logits.length / batch;
      const probabilities = activation === 'softmax' ? softmaxRows(logits, batch, classes) : logits;
      const argmax = new Uint32Array(batch);
      for (let r = 0; r < batch; r++) {
        let best = 0;
        let top = -Infinity;
        for (let c = 0; c < classes; c++) {
          const v = logits[r * classes + c];
          if (v > top) [best, top] = [c, v];
        }
        argmax[r] = best;
      }
      return {
        batch,
        classes,
        logits,
        probabilities,
        labels: argmax,
        label: batch > 0 ? argmax[0] : -1,
        backend: model.backend,
        latencyMs: model.lastLatencyMs ?? 0,
      };
    },
  };
}

/** Softmax of each row as brasa's Rust did it: `v - max` in float32, exp and sum in float64. */
export function softmaxRows(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, values[o + c]);
    let sum = 0;
    const exps = new Float64Array(cols);
    for (let c = 0; c < cols; c++) sum += exps[c] = Math.exp(Math.fround(values[o + c] - max));
    for (let c = 0; c < cols; c++) out[o + c] = exps[c] / sum;
  }
  return out;
}
