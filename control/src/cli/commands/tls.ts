// `egret tls bootstrap|publish-ca`: control's TLS material in Kubernetes (control/src/tls/). The
// rendered install runs it as a Job at install time and as a daily CronJob (renewal).
import { loadKubeConfig, parseFlags, UsageError, type CliCommand } from "../command.js";
import { DEFAULT_LIFETIMES, ensureControlTls, publishCa, TlsBootstrapError } from "../../tls/bootstrap.js";
import { kubeTlsStore } from "../../tls/kube-store.js";

const HELP = `usage: egret tls bootstrap --server-name NAME... [options]
       egret tls publish-ca [options]

bootstrap: makes sure control's TLS material exists and is fresh (run at install and daily):
  Secret --ca-secret (egret-ca: ca.crt, ca.key), a private CA made once (ECDSA P-256);
  Secret --tls-secret (egret-control-tls: tls.crt, tls.key, ca.crt), control's serving
  certificate for the --server-name names, re-issued --renew-before-days before its end;
  ConfigMap --ca-configmap (egret-control-ca: ca.crt), what agents (--ca-file) and Istio's
  DestinationRule (credentialName configmap://NS/NAME) verify control with.
publish-ca: cert-manager mode: copies --tls-secret's ca.crt into --ca-configmap.

  --namespace NS            where the objects live (default $POD_NAMESPACE, else egret-system)
  --server-name NAME        a name of the serving certificate (repeatable; the first is the one
                            agents and sidecars verify: egret-control.egret-system.svc)
  --ca-secret NAME          default egret-ca
  --tls-secret NAME         default egret-control-tls
  --ca-configmap NAME       default egret-control-ca
  --ca-days N               CA lifetime (default ${DEFAULT_LIFETIMES.caDays})
  --cert-days N             serving certificate lifetime (default ${DEFAULT_LIFETIMES.certDays})
  --renew-before-days N     re-issue when fewer days are left (default ${DEFAULT_LIFETIMES.renewBeforeDays})
  --kubeconfig FILE         default: in-cluster, else ~/.kube/config
`;

const DNS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function days(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 36500) throw new UsageError(`--${flag} must be a whole number of days from 1 to 36500 (got ${JSON.stringify(value)})`);
  return n;
}

export const command: CliCommand = {
  name: "tls",
  summary: "create and renew control's TLS material in Kubernetes (the install's bootstrap Job)",
  async run(argv) {
    const { values, positionals } = parseFlags({
      args: argv,
      options: {
        namespace: { type: "string" },
        "server-name": { type: "string", multiple: true },
        "ca-secret": { type: "string", default: "egret-ca" },
        "tls-secret": { type: "string", default: "egret-control-tls" },
        "ca-configmap": { type: "string", default: "egret-control-ca" },
        "ca-days": { type: "string" },
        "cert-days": { type: "string" },
        "renew-before-days": { type: "string" },
        kubeconfig: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: true,
    }, HELP);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const action = positionals[0];
    if ((action !== "bootstrap" && action !== "publish-ca") || positionals.length !== 1) throw new UsageError(`say what to do: bootstrap or publish-ca\n\n${HELP}`);
    const namespace = values.namespace ?? process.env.POD_NAMESPACE ?? "egret-system";
    const store = kubeTlsStore(loadKubeConfig(values.kubeconfig), namespace);
    try {
      if (action === "publish-ca") {
        const result = await publishCa({ store, tlsSecret: values["tls-secret"]!, caConfigMap: values["ca-configmap"]! });
        process.stdout.write(`${JSON.stringify({ namespace, caConfigMap: result })}\n`);
        return 0;
      }
      const serverNames = values["server-name"] ?? [];
      if (serverNames.length === 0) throw new UsageError("bootstrap needs --server-name NAME (the name agents and sidecars verify)");
      for (const n of serverNames) if (!DNS_NAME.test(n)) throw new UsageError(`--server-name must be a lowercase DNS name (got "${n}")`);
      const result = await ensureControlTls({
        store,
        now: () => new Date(),
        serverNames,
        caSecret: values["ca-secret"]!,
        tlsSecret: values["tls-secret"]!,
        caConfigMap: values["ca-configmap"]!,
        caDays: days("ca-days", values["ca-days"], DEFAULT_LIFETIMES.caDays),
        certDays: days("cert-days", values["cert-days"], DEFAULT_LIFETIMES.certDays),
        renewBeforeDays: days("renew-before-days", values["renew-before-days"], DEFAULT_LIFETIMES.renewBeforeDays),
      });
      process.stdout.write(`${JSON.stringify({ namespace, ...result })}\n`);
      return 0;
    } catch (err) {
      if (err instanceof TlsBootstrapError || err instanceof UsageError) throw err;
      const code = (err as { code?: number }).code;
      throw new Error(`the Kubernetes API refused (${code ?? "no answer"}): ${(err as Error).message}`);
    }
  },
};
