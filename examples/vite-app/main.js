// The smallest app: a bundler-built page that classifies one image with brasa and the MNIST
// model package.
import { loadModel, createClassifier } from 'brasa';
import mnist from 'mnist-model';

// Weights are served next to the app (copy them into `public/`, or point at a registry).
const model = await loadModel(mnist, { weights: new URL('./mnist.bpk', location.href) });
const classifier = createClassifier(model); // labels and softmax from the package's metadata

// A vertical stroke: a "1".
const pixels = new Float32Array(28 * 28);
for (let y = 5; y < 23; y++) for (let x = 13; x < 16; x++) pixels[y * 28 + x] = 1;

const { label } = await classifier.run(pixels);
document.getElementById('answer').textContent = String(label);
document.getElementById('backend').textContent = model.backend;
document.body.dataset.done = 'true';
