import { enableCompileCache } from "node:module";

// Cache V8's compiled code for our modules and dependencies between runs
// (Node's default folder under the OS temp dir): it saves tens of milliseconds
// on every command. This module imports nothing else so the cache is on first.
enableCompileCache();
await import("./main.ts");
