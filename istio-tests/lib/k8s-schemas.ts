// Validates Kubernetes and Istio objects against the OpenAPI schemas shipped in the npm packages
// kubernetes-models (Kubernetes 1.3x) and @kubernetes-models/istio, by apiVersion and kind.
// An object whose kind has no schema there is reported, never silently accepted.

export interface SchemaProblem { id: string; message: string }

interface ModelClass { new (data: unknown): { validate(): void } }

function modulePath(apiVersion: string, kind: string): string {
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  if (group.endsWith("istio.io")) return `@kubernetes-models/istio/${group}/${version}/${kind}`;
  return group === "" ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
}

export async function validateObject(obj: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }): Promise<SchemaProblem[]> {
  const id = `${obj.kind} ${obj.metadata.namespace ? obj.metadata.namespace + "/" : ""}${obj.metadata.name}`;
  let Model: ModelClass | undefined;
  try {
    const mod = (await import(modulePath(obj.apiVersion, obj.kind))) as Record<string, ModelClass>;
    Model = mod[obj.kind];
  } catch {
    Model = undefined;
  }
  if (!Model) return [{ id, message: `no schema for ${obj.apiVersion} ${obj.kind} in kubernetes-models/@kubernetes-models/istio` }];
  try {
    new Model(obj).validate();
    return [];
  } catch (err) {
    return [{ id, message: (err as Error).message }];
  }
}
