/**
 * The entry of the `homelab` provider plugin, started by
 * `bin/pulumi-resource-homelab`. The SDK prints the gRPC port on stdout,
 * which the engine reads, so nothing else here may write to stdout.
 */
import { enableCompileCache } from "node:module";

// The engine starts the plugin for every preview, up and refresh, and loading the
// Pulumi SDK dominates its start: V8's code cache (shared with the CLI) shortens it.
// Turned on before anything else is imported, so it covers the SDK too.
enableCompileCache();
const { main } = await import("@pulumi/pulumi/provider/index.js");
const { engineAddressFromArgs } = await import("./log.ts");
const { HomelabProvider } = await import("./provider.ts");
const args = process.argv.slice(2);
// The engine's address: status lines and verbose output go to it, attached to the resource.
const engineAddress = engineAddressFromArgs(args);
await main(new HomelabProvider({ env: process.env, ...(engineAddress !== undefined ? { engineAddress } : {}) }), args);
