// The activity classifiers by name, as an app's config selects them (`classifier: pluto | jupyter | generic`).

import { genericClassifier } from './generic.js';
import { createJupyterClassifier, jupyterClassifier } from './jupyter.js';
import { plutoClassifier } from './pluto.js';
import type { Classifier, ClassifierKind } from './types.js';

export type { ActivityKind, Classifier, ClassifierKind, ConnectionClassifier, MessageClass } from './types.js';
export { genericClassifier, jupyterClassifier, plutoClassifier, createJupyterClassifier };

/** The classifier for an app. opts.baseUrl (Jupyter only) is the server's base_url, when the proxy knows it. */
export function classifierFor(kind: ClassifierKind, opts: { baseUrl?: string } = {}): Classifier {
  switch (kind) {
    case 'pluto':
      return plutoClassifier;
    case 'jupyter':
      return opts.baseUrl === undefined ? jupyterClassifier : createJupyterClassifier({ baseUrl: opts.baseUrl });
    case 'generic':
      return genericClassifier;
    default:
      throw new TypeError(`unknown classifier ${JSON.stringify(kind)}: expected pluto, jupyter or generic`);
  }
}
