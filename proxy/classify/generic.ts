// The classifier for apps warmpool knows nothing about: every client message and every successful request is activity.
// Errors and the WebSocket upgrade itself (101) are not; the messages on the socket speak for it.

import type { ActivityKind, Classifier, ConnectionClassifier, MessageClass } from './types.js';

const DATA: MessageClass = Object.freeze({ kind: 'active', type: 'data' });

const connection: ConnectionClassifier = {
  clientMessage(): MessageClass {
    return DATA;
  },
};

export const genericClassifier: Classifier = {
  name: 'generic',
  newConnection(): ConnectionClassifier {
    return connection; // stateless, so one object serves every connection
  },
  http(_method: string, _path: string, status: number): ActivityKind {
    return status >= 400 || status === 101 ? 'idle' : 'active';
  },
};
