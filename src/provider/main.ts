/**
 * The entry of the `homelab` provider plugin, started by
 * `bin/pulumi-resource-homelab`. The SDK prints the gRPC port on stdout,
 * which the engine reads, so nothing else here may write to stdout.
 */
import { main } from "@pulumi/pulumi/provider/index.js";
import { HomelabProvider } from "./provider.ts";

await main(new HomelabProvider({ env: process.env }), process.argv.slice(2));
