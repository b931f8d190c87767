import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Script, ShellValueError, assign, cmd, isShellName, operand, quote, raw, systemdQuote } from "../../src/provision/shell.ts";
import { HOSTILE } from "./helpers.ts";

const SHELLS = ["sh", "bash", "dash"].filter((s) => spawnSync("sh", ["-c", `command -v ${s}`]).status === 0);

/** Runs `printf '%s\0'` with the quoted words under a shell, in a scratch folder, and returns the words it got and the files that appeared. */
function roundTrip(shell: string, words: readonly string[]): { got: string[]; files: string[] } {
  const dir = mkdtempSync(join(tmpdir(), "homelab-quote-"));
  try {
    const out = execFileSync(shell, ["-c", `printf '%s\\0' ${words.map(quote).join(" ")}`], { cwd: dir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/nonexistent" } });
    const got = out.toString("utf8").split("\0");
    got.pop();
    return { got, files: readdirSync(dir) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("quote", () => {
  test("leaves safe words alone", () => {
    assert.equal(quote("abc"), "abc");
    assert.equal(quote("/opt/homelab/peach/docker-compose.yaml"), "/opt/homelab/peach/docker-compose.yaml");
    assert.equal(quote("10.87.53.1:5000/hello:abc"), "10.87.53.1:5000/hello:abc");
  });

  test("single-quotes everything else, with ' as '\\''", () => {
    assert.equal(quote(""), "''");
    assert.equal(quote("a b"), "'a b'");
    assert.equal(quote("it's"), "'it'\\''s'");
    assert.equal(quote("$(x)"), "'$(x)'");
    assert.equal(quote("~"), "'~'");
  });

  test("refuses NUL", () => {
    assert.throws(() => quote("a\0b"), ShellValueError);
    assert.throws(() => cmd("echo", "\0"), /NUL/);
  });

  for (const shell of SHELLS) {
    test(`every hostile value reaches ${shell} as one exact word and runs nothing`, () => {
      const { got, files } = roundTrip(shell, HOSTILE);
      assert.deepEqual(got, [...HOSTILE]);
      assert.deepEqual(files, [], "no command inside a value ran");
    });
  }

  test("random byte strings round-trip through sh", () => {
    let seed = 42;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const words: string[] = [];
    for (let i = 0; i < 200; i++) {
      let s = "";
      const n = rand() % 12;
      for (let j = 0; j < n; j++) s += String.fromCharCode(1 + (rand() % 126));
      words.push(s);
    }
    assert.deepEqual(roundTrip("sh", words).got, words);
  });
});

describe("operand", () => {
  test("a relative path starting with - gets ./ so it is not an option", () => {
    assert.equal(operand("-rf"), "./-rf");
    assert.equal(operand("a/-b"), "a/-b");
    assert.equal(operand("/abs/-x"), "/abs/-x");
  });

  test("rm of a file named -rf removes that file only", () => {
    const dir = mkdtempSync(join(tmpdir(), "homelab-operand-"));
    try {
      execFileSync("sh", ["-c", "touch ./-rf keep"], { cwd: dir });
      execFileSync("sh", ["-c", cmd("rm", operand("-rf"))], { cwd: dir });
      assert.deepEqual(readdirSync(dir), ["keep"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("cmd and assign", () => {
  test("values are quoted, raw fragments are not", () => {
    assert.equal(cmd("echo", "a b", raw(">"), "/tmp/x y"), "echo 'a b' > '/tmp/x y'");
    assert.equal(cmd("docker", "compose", "-p", "peach", raw("2>&1")), "docker compose -p peach 2>&1");
  });

  test("assign checks the name and quotes the value", () => {
    assert.equal(assign("API_KEY", "x'y"), "API_KEY='x'\\''y'");
    assert.throws(() => assign("1BAD", "x"), /not a valid shell variable name/);
    assert.throws(() => assign("A;B", "x"), /not a valid/);
    assert.ok(isShellName("_A1"));
    assert.ok(!isShellName("a-b"));
  });

  test("an assigned hostile value is exported byte-exact", () => {
    for (const v of HOSTILE) {
      const out = execFileSync("sh", ["-c", `${assign("V", v)}; export V; printf '%s' "$V"`]).toString("utf8");
      assert.equal(out, v);
    }
  });
});

describe("Script", () => {
  test("starts with set -eu, one line per command, ends with a newline", () => {
    const s = new Script().run("echo", "hi there").line("if true; then :; fi").comment("why\nnot");
    assert.equal(s.toString(), "set -eu\necho 'hi there'\nif true; then :; fi\n# why not\n");
  });

  test("a failing command stops the script", () => {
    const s = new Script().run("false").run("echo", "after");
    const r = spawnSync("sh", ["-s"], { input: s.toString() });
    assert.notEqual(r.status, 0);
    assert.equal(r.stdout.toString(), "");
  });

  test("writeBase64 writes any bytes exactly, even a line equal to a heredoc end", () => {
    const dir = mkdtempSync(join(tmpdir(), "homelab-b64-"));
    try {
      const bytes = Buffer.concat([Buffer.from("EOF\nHOMELAB_B64_EOF\n$(touch PWNED)\n'\"`"), Buffer.from([0, 255, 1, 10, 13])]);
      const target = join(dir, "a file 'named' $(x)");
      const s = new Script().writeBase64(target, bytes).writeBase64(join(dir, "empty"), "");
      const r = spawnSync("sh", ["-s"], { input: s.toString(), cwd: dir });
      assert.equal(r.status, 0, r.stderr.toString());
      assert.deepEqual(readFileSync(target), bytes);
      assert.equal(readFileSync(join(dir, "empty"), "utf8"), "");
      assert.deepEqual(readdirSync(dir).sort(), ["a file 'named' $(x)", "empty"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("include appends another script without its header", () => {
    const a = new Script().run("echo", "a");
    const b = new Script().run("echo", "b").include(a);
    assert.equal(b.toString(), "set -eu\necho b\necho a\n");
  });
});

describe("systemdQuote", () => {
  test("plain values stay plain; others are double-quoted with \\ \" % $ escaped", () => {
    assert.equal(systemdQuote("/opt/homelab/peach/compose"), "/opt/homelab/peach/compose");
    assert.equal(systemdQuote("a b"), '"a b"');
    assert.equal(systemdQuote('say "hi" \\ 100% $HOME'), '"say \\"hi\\" \\\\ 100%% $$HOME"');
  });

  test("refuses newlines and NUL", () => {
    assert.throws(() => systemdQuote("a\nb"), ShellValueError);
    assert.throws(() => systemdQuote("a\0b"), ShellValueError);
  });
});
