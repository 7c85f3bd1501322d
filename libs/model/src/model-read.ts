/**
 * Reading a TensorFlow.js LayersModel directory without TensorFlow.js and without holding
 * its weights: model.json's topology gives the architecture (Dense layers with bias and
 * Dropout, in a Sequential model or a functional chain, the models tfjs-layers' own
 * loader accepted here before), and its weights manifest says where in the weight files
 * each kernel and bias lies. readModelHead returns that as ParamSegments (the file ranges
 * in the layout order), checking every file's size and every weight's finiteness as it
 * reads them in pieces; loadModel then reads them into an Mlp.
 *
 * Weights are matched by name, `<layer>/kernel` and `<layer>/bias` as tfjs-layers matches
 * them, so their order in the manifest and how it is sharded do not matter. Only plain
 * float32 weights are read; a quantized or float16 model is refused, naming the weight.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type Activation, type Architecture, type HiddenLayer, type OutputActivation, paramLayout } from './architecture.js';
import { ModelError } from './errors.js';
import { Mlp } from './mlp.js';
import { MODEL_JSON, type ModelMetadata, parseModelMetadata } from './modelio.js';
import { type FileParams, paramPieces, readParamsSync } from './param-source.js';

export interface ModelHead {
  readonly arch: Architecture;
  /** The dense layers' names, in order (the last is the output layer). */
  readonly layerNames: readonly string[];
  /** Null for a LayersModel that ringtrain did not write (e.g. converted from Keras). */
  readonly metadata: ModelMetadata | null;
  /** The weights, in the layout order: file ranges, adjacent ones merged. */
  readonly params: readonly FileParams[];
}

export interface LoadedModel {
  readonly mlp: Mlp;
  readonly layerNames: readonly string[];
  readonly metadata: ModelMetadata | null;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

interface DenseLayer {
  readonly name: string;
  readonly units: number;
  readonly activation: string;
}

/** Bytes per element of a manifest entry as stored (quantized entries by their stored type). */
function storedBytes(entry: Json): number | null {
  const q = entry['quantization'];
  const dtype = isObject(q) ? q['dtype'] : entry['dtype'];
  return ({ float32: 4, int32: 4, uint16: 2, float16: 2, uint8: 1, bool: 1 } as Record<string, number>)[String(dtype)] ?? null;
}

/** The layer list of a Sequential or functional topology, checked to be a chain. */
function topologyLayers(topology: unknown, bad: (what: string) => ModelError): Json[] {
  let model = isObject(topology) && isObject(topology['model_config']) ? topology['model_config'] : topology; // Keras HDF5 conversions wrap it
  if (!isObject(model)) throw bad('modelTopology is not an object');
  const cls = model['class_name'];
  const config = model['config'];
  const layers = Array.isArray(config) ? config : isObject(config) ? config['layers'] : undefined; // old Keras wrote a Sequential's layers as its config
  if (!Array.isArray(layers) || !layers.every(isObject)) throw bad('modelTopology has no layer list');
  if (cls === 'Sequential') return layers;
  if (cls !== 'Model' && cls !== 'Functional') throw bad(`modelTopology is a ${String(cls)}; only Sequential and functional models are read`);
  // A functional model is read only when it is a chain: each layer's one input is the layer before it.
  layers.forEach((layer, i) => {
    const inbound = inboundNames(layer['inbound_nodes']);
    const expected = i === 0 ? [] : [String(layers[i - 1]!['name'])];
    if (inbound === null || inbound.join('\u0000') !== expected.join('\u0000')) {
      throw bad(`layer ${String(layer['name'])} does not take the layer before it as its only input; only a chain of layers is an MLP`);
    }
  });
  return layers;
}

/** The names of the layers a functional layer's one call takes (Keras 2 and Keras 3 formats); null when it is not one call. */
function inboundNames(nodes: unknown): string[] | null {
  if (!Array.isArray(nodes)) return null;
  if (nodes.length === 0) return [];
  if (nodes.length !== 1) return null;
  const node = nodes[0];
  if (Array.isArray(node)) return node.map((t) => (Array.isArray(t) ? String(t[0]) : '?')); // [[name, 0, 0, {}], ...]
  if (isObject(node) && Array.isArray(node['args'])) {
    return node['args'].map((a) => {
      const history = isObject(a) && isObject(a['config']) ? a['config']['keras_history'] : undefined;
      return Array.isArray(history) ? String(history[0]) : '?';
    });
  }
  return null;
}

function denseLayers(layers: Json[], bad: (what: string) => ModelError): { denses: DenseLayer[]; dropoutAfter: Map<number, number>; inputs: number | null } {
  const denses: DenseLayer[] = [];
  const dropoutAfter = new Map<number, number>();
  let inputs: number | null = null;
  for (const layer of layers) {
    const cls = layer['class_name'];
    const config = isObject(layer['config']) ? layer['config'] : {};
    const name = String(config['name'] ?? layer['name']);
    const shape = config['batch_input_shape'] ?? config['batch_shape'];
    if (Array.isArray(shape) && denses.length === 0 && typeof shape.at(-1) === 'number') inputs = shape.at(-1) as number;
    if (cls === 'Dense') {
      if (config['use_bias'] === false) throw bad(`layer ${name} has no bias; unsupported`);
      const units = config['units'];
      if (!Number.isInteger(units) || (units as number) < 1) throw bad(`layer ${name} has units ${JSON.stringify(units)}`);
      const activation = config['activation'] ?? 'linear';
      denses.push({ name, units: units as number, activation: typeof activation === 'string' ? activation : JSON.stringify(activation) });
    } else if (cls === 'Dropout') {
      if (denses.length === 0) throw bad('dropout before the first dense layer is unsupported');
      const rate = config['rate'];
      if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) throw bad(`layer ${name} has dropout rate ${JSON.stringify(rate)}`);
      dropoutAfter.set(denses.length - 1, rate);
    } else if (cls !== 'InputLayer') {
      throw bad(`layer ${name} is a ${String(cls)}; only Dense and Dropout MLPs are supported`);
    }
  }
  return { denses, dropoutAfter, inputs };
}

/** Where each named weight lies: its file ranges (a weight may span two shard files). */
async function locateWeights(manifest: unknown, dir: string, jsonPath: string, bad: (what: string) => ModelError): Promise<Map<string, { shape: number[]; dtype: string; ranges: FileParams[] }>> {
  if (!Array.isArray(manifest)) throw bad('weightsManifest is not a list');
  const found = new Map<string, { shape: number[]; dtype: string; ranges: FileParams[] }>();
  for (const group of manifest) {
    if (!isObject(group) || !Array.isArray(group['paths']) || !Array.isArray(group['weights'])) throw bad('a weightsManifest group has no paths or weights');
    const files: { path: string; bytes: number }[] = [];
    for (const p of group['paths']) {
      const path = join(dir, String(p));
      const info = await stat(path).catch(() => null);
      if (!info?.isFile()) throw new ModelError('MODEL_FILE_MISSING', `${path}: weights file named by ${jsonPath} cannot be read`);
      files.push({ path, bytes: info.size });
    }
    let at = 0; // byte offset in the group's files, taken as one
    for (const entry of group['weights']) {
      if (!isObject(entry) || typeof entry['name'] !== 'string' || !Array.isArray(entry['shape']) || !entry['shape'].every((d) => Number.isInteger(d) && d >= 0)) {
        throw bad('a weightsManifest entry has no name or shape');
      }
      const per = storedBytes(entry);
      if (per === null) throw bad(`weight ${entry['name']} has dtype ${JSON.stringify(entry['dtype'])}, which cannot be read`);
      const shape = entry['shape'] as number[];
      const bytes = per * shape.reduce((n, d) => n * d, 1);
      const dtype = isObject(entry['quantization']) ? `quantized ${String(entry['quantization']['dtype'])}` : String(entry['dtype'] ?? 'float32');
      // Only plain float32 weights are located; another is refused if a layer needs it (weightOf).
      const ranges: FileParams[] = [];
      if (dtype === 'float32') {
        let fileStart = 0;
        for (const f of files) {
          const from = Math.max(at, fileStart);
          const to = Math.min(at + bytes, fileStart + f.bytes);
          if (from < to) {
            if ((to - from) % 4 !== 0) throw bad(`weight ${entry['name']} has a float32 split between two weight files; unsupported`);
            ranges.push({ kind: 'file', path: f.path, byteOffset: from - fileStart, count: (to - from) / 4 });
          }
          fileStart += f.bytes;
        }
      }
      found.set(entry['name'].replace(/:0$/, ''), { shape, dtype, ranges });
      at += bytes;
    }
    const total = files.reduce((n, f) => n + f.bytes, 0);
    if (total !== at) throw bad(`the weight files ${files.map((f) => f.path).join(', ')} hold ${total} bytes; the manifest names ${at}`);
  }
  return found;
}

function mergeAdjacent(ranges: FileParams[]): FileParams[] {
  const out: FileParams[] = [];
  for (const r of ranges) {
    const last = out.at(-1);
    if (last && last.path === r.path && last.byteOffset + 4 * last.count === r.byteOffset) out[out.length - 1] = { ...last, count: last.count + r.count };
    else out.push(r);
  }
  return out;
}

/** The first value of `ranges` that is not finite, named as `name[i]`; null when all are. */
async function firstNotFinite(ranges: readonly FileParams[], names: (i: number) => string): Promise<string | null> {
  let index = 0;
  for await (const piece of paramPieces(ranges)) {
    const values = new Float32Array(piece.buffer, piece.byteOffset, piece.byteLength / 4);
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return `${names(index + i)} is ${values[i]}`;
    index += values.length;
  }
  return null;
}

/**
 * Reads model.json at `path` (a model directory or the file itself): the architecture,
 * the layer names, ringtrain's metadata, and where the weights lie, each checked (shapes
 * against the layers, file sizes against the manifest, every value finite).
 */
export async function readModelHead(path: string): Promise<ModelHead> {
  const jsonPath = path.endsWith('.json') ? path : join(path, MODEL_JSON);
  const bad = (what: string) => new ModelError('MODEL_FILE_INVALID', `${jsonPath}: ${what}`);
  let json: Json;
  try {
    json = JSON.parse(await readFile(jsonPath, 'utf8'));
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ModelError(
      missing ? 'MODEL_FILE_MISSING' : 'MODEL_FILE_INVALID',
      missing ? `${jsonPath}: no such file` : `${jsonPath}: not valid JSON (${(err as Error).message})`,
      { cause: err },
    );
  }
  if (!isObject(json) || !json['modelTopology'] || !Array.isArray(json['weightsManifest'])) {
    throw bad('not a TensorFlow.js LayersModel (needs modelTopology and weightsManifest)');
  }
  const { denses, dropoutAfter, inputs: declared } = denseLayers(topologyLayers(json['modelTopology'], bad), bad);
  const last = denses.at(-1);
  if (!last) throw bad('no Dense layer');
  const weights = await locateWeights(json['weightsManifest'], dirname(jsonPath), jsonPath, bad);
  const weightOf = (layer: string, kind: 'kernel' | 'bias') => {
    const w = weights.get(`${layer}/${kind}`);
    if (!w) throw bad(`the weights manifest has no ${layer}/${kind}`);
    if (w.dtype !== 'float32') throw bad(`weight ${layer}/${kind} is ${w.dtype}; only float32 weights are read`);
    return w;
  };
  const firstKernel = weightOf(denses[0]!.name, 'kernel');
  const inputs = firstKernel.shape[0];
  if (firstKernel.shape.length !== 2 || !inputs) throw bad(`weight ${denses[0]!.name}/kernel has shape [${firstKernel.shape}]`);
  if (declared !== null && declared !== inputs) throw bad(`the input layer takes ${declared} features; ${denses[0]!.name}/kernel takes ${inputs}`);
  const hidden: HiddenLayer[] = denses.slice(0, -1).map((d, i) => {
    if (!['relu', 'tanh', 'sigmoid', 'linear'].includes(d.activation)) throw bad(`hidden activation ${d.activation} is unsupported`);
    return { units: d.units, activation: d.activation as Activation, dropout: dropoutAfter.get(i) ?? 0 };
  });
  if (last.activation !== 'softmax' && last.activation !== 'linear') throw bad(`output activation ${last.activation} is unsupported (softmax or linear)`);
  const arch: Architecture = { inputs, hidden, outputs: last.units, output: last.activation as OutputActivation };
  const layout = paramLayout(arch);
  const ranges: FileParams[] = [];
  for (const slot of layout.slots) {
    const layer = denses[slot.layer]!.name;
    const w = weightOf(layer, slot.kind);
    if (w.shape.join(',') !== slot.shape.join(',')) throw bad(`weight ${layer}/${slot.kind} has shape [${w.shape}]; the layers need [${slot.shape}]`);
    ranges.push(...w.ranges);
  }
  const params = mergeAdjacent(ranges);
  const notFinite = await firstNotFinite(params, (i) => {
    const slot = layout.slots.find((s) => i < s.offset + s.size)!;
    return `${denses[slot.layer]!.name}/${slot.kind}[${i - slot.offset}]`;
  });
  if (notFinite !== null) throw bad(`weight ${notFinite}`);
  const raw = isObject(json['userDefinedMetadata']) ? json['userDefinedMetadata']['ringtrain'] : undefined;
  return {
    arch,
    layerNames: denses.map((d) => d.name),
    metadata: raw === undefined ? null : parseModelMetadata(raw, arch.outputs, jsonPath),
    params,
  };
}

/** Loads a model directory (or the path of its model.json) into an Mlp. */
export async function loadModel(path: string): Promise<LoadedModel> {
  const head = await readModelHead(path);
  const mlp = Mlp.adopt(head.arch, readParamsSync(head.params, paramLayout(head.arch).size));
  return { mlp, layerNames: head.layerNames, metadata: head.metadata };
}
