// client-node adapters for agent authentication in Kubernetes mode: TokenReview
// (authentication.k8s.io/v1, RBAC `create tokenreviews`) and reading the token's bound pod
// (`get pods`, which control already has for its informer).
import { AuthenticationV1Api, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { BoundPodReader, TokenReviewer, TokenReviewStatus } from "../auth/token-review.js";

export function kubeTokenReviewer(kc: KubeConfig): TokenReviewer {
  const api = kc.makeApiClient(AuthenticationV1Api);
  return {
    async review(token, audiences) {
      const answer = await api.createTokenReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token, audiences } } });
      return (answer.status ?? {}) as TokenReviewStatus;
    },
  };
}

export function kubeBoundPodReader(kc: KubeConfig): BoundPodReader {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    async pod(namespace, name) {
      try {
        const pod = await core.readNamespacedPod({ namespace, name });
        return { uid: pod.metadata?.uid, nodeName: pod.spec?.nodeName };
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
  };
}
