/** Hidden-layer activations and their derivatives, for the hand-written backward pass. */
import * as tf from '@tensorflow/tfjs-core';
import type { Activation } from './architecture.js';
import { ModelError } from './errors.js';

export function activate(z: tf.Tensor2D, activation: Activation): tf.Tensor2D {
  switch (activation) {
    case 'relu':
      return tf.relu(z);
    case 'tanh':
      return tf.tanh(z);
    case 'sigmoid':
      return tf.sigmoid(z);
    case 'linear':
      return z;
    default: {
      const never: never = activation;
      throw new ModelError('MODEL_SPEC_INVALID', `unknown activation ${String(never)}`);
    }
  }
}

/** d(activation)/dz times the upstream gradient, from z and the activation's output a. */
export function activationBackward(dA: tf.Tensor2D, z: tf.Tensor2D, a: tf.Tensor2D, activation: Activation): tf.Tensor2D {
  switch (activation) {
    case 'relu':
      return tf.mul(dA, tf.step(z));
    case 'tanh':
      return tf.mul(dA, tf.sub(1, tf.square(a)));
    case 'sigmoid':
      return tf.mul(dA, tf.mul(a, tf.sub(1, a)));
    case 'linear':
      return dA;
    default: {
      const never: never = activation;
      throw new ModelError('MODEL_SPEC_INVALID', `unknown activation ${String(never)}`);
    }
  }
}
