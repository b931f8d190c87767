/**
 * Service data survives every rebuild, end to end, as a user meets it: the
 * lxc sandbox (real guests, real Docker, volumes that are real folders), the
 * real Pulumi engine and provider plugin through the CLI. The service
 * `notes` counts visits in a compose named volume placed on a Proxmox volume
 * (`volumes:` + `docker.volumes_on`), through its own web page (a busybox
 * CGI). After data is written, each of these keeps it, and the page serves
 * the same count: a template change (a replace: a new container, the volume
 * moved to it after a backup), a volume growing (a resize: same container),
 * a monitor recreate after the project is broken, destroy (the container
 * kept with its data, listed by status) then deploy, and a deploy whose
 * change fails the health checks (rolled back to its snapshot), and a replace
 * whose new container fails them (the old one's backup restored over it). Then
 * `destroy --delete-data` removes the data (after a backup). A second
 * service with a bind mount cannot be snapshotted, so its restart-requiring
 * change is preceded by a vzdump backup instead. Figures are printed.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { MonitorEvent } from "../../src/monitor/events.ts";
import { LxcWorld, page, waitForPage } from "./lxc-world.ts";

const BRIDGE = "hldata0";
const SUBNET = "10.87.97.0/24";
const sec = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The CGI scripts of the notes page: count (increments the counter on the volume) and read. */
const COUNT_CGI = `#!/bin/busybox sh
n=$(/bin/busybox cat /data/count 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > /data/count
printf 'Content-Type: text/plain\\r\\n\\r\\ncount=%s\\n' "$n"
`;
const READ_CGI = `#!/bin/busybox sh
printf 'Content-Type: text/plain\\r\\n\\r\\ncount=%s\\n' "$(/bin/busybox cat /data/count 2>/dev/null || echo 0)"
`;

/** The compose file: the hello image serving /www (with its CGI scripts), the counter on the named volume notes-data. */
function compose(image: string, o: { broken?: boolean } = {}): string {
  return [
    "services:",
    "  web:",
    `    image: ${image}`,
    "    restart: unless-stopped",
    `    command: ["/bin/busybox", "sh", "-c", "trap 'exit 0' TERM INT; /bin/busybox httpd -f -p 80 -h ${o.broken ? "/bin" : "/www"} & wait"]`,
    "    ports:",
    '      - "80:80"',
    "    volumes:",
    "      - notes-data:/data",
    "volumes:",
    "  notes-data:",
    "",
  ].join("\n");
}

function serviceYaml(o: { version: string; size: number; extra?: string; volumes?: boolean }): string {
  return [
    "name: notes",
    "resources:",
    "  - id: notes_web_image",
    "    type: docker:image",
    "    name: notes-web",
    "    path: ./docker/web",
    "    registry: local_registry",
    "  - id: notes_container",
    "    type: proxmox:container",
    "    image:",
    '      name: "*debian*"',
    `      version: "${o.version}"`,
    "    unprivileged: false",
    "    host:",
    "      resources: { memory: 512, cores: 1, disk: 4 }",
    ...(o.volumes === false ? ["    docker:", "      compose: true"] : ["    volumes:", `      - { name: data, size: ${o.size}, path: /srv/notes }`, "    docker:", "      compose: true", "      volumes_on: data"]),
    "    network:",
    '      ports: ["80:80"]',
    "    depends_on: [notes_web_image]",
    ...(o.extra !== undefined ? [o.extra] : []),
    "monitoring:",
    "  health_checks:",
    "    - type: http",
    "      url: http://{address}:80/cgi-bin/read",
    "      expect_body: count=",
    "      interval: 2",
    "      timeout: 1",
    "      retries: 2",
    "  auto_remediate: true",
    "  restart_first: false",
    "  max_remediations_per_hour: 3",
    "  grace_period: 3",
    "",
  ].join("\n");
}

void describe("[root][lxc][docker][pulumi] a service's data survives every rebuild on the lxc sandbox", { timeout: 45 * 60_000 }, () => {
  const world = new LxcWorld({ bridge: BRIDGE, subnet: SUBNET, prefix: "homelab-data-e2e-" });
  let version = ">=12";
  let size = 1;

  const url = async (): Promise<string> => `http://${(await world.container("notes")).address}`;
  const read = async (): Promise<string> => {
    const p = await page(`${await url()}/cgi-bin/read`);
    assert.ok(p, "the page answers");
    return p.body.trim();
  };
  const writeService = (extra?: string): void => writeFileSync(join(world.repo, "services", "notes", "service.yaml"), serviceYaml({ version, size, ...(extra !== undefined ? { extra } : {}) }));

  before(async () => {
    world.addHello("notes", "notes");
    const www = join(world.repo, "services", "notes", "docker", "web", "www", "cgi-bin");
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, "count"), COUNT_CGI);
    writeFileSync(join(www, "read"), READ_CGI);
    chmodSync(join(www, "count"), 0o755);
    chmodSync(join(www, "read"), 0o755);
    writeFileSync(join(world.repo, "services", "notes", "docker-compose.yaml"), compose("notes-web"));
    await world.start();
  });
  after(async () => {
    await world.close();
    process.stdout.write(`\ndata e2e figures:\n  ${world.figures.join("\n  ")}\n`);
  });

  void it("a service deployed before it had a volume: adding volumes and volumes_on moves its compose volume's data onto the volume", async () => {
    writeFileSync(join(world.repo, "services", "notes", "service.yaml"), serviceYaml({ version, size, volumes: false }));
    const validate = await world.homelab("--env", "sandbox", "validate", "notes");
    assert.match(validate.stdout + validate.stderr, /compose volume "notes-data" would live in the container's root disk/);
    await world.deploy("notes");
    const before = await world.container("notes");
    for (let i = 0; i < 2; i++) await page(`http://${before.address}/cgi-bin/count`);
    assert.equal(await read(), "count=2");
    writeService();
    const r = await world.deploy("notes");
    assert.match(r.stdout, /HOMELAB-MIGRATED notes-data|migrated|updated/);
    const c = await world.container("notes");
    assert.equal(c.vmid, before.vmid, "a volume is added in place");
    assert.equal(await read(), "count=2");
    const inside = await world.guest(c.address, "cat /srv/notes/notes-data/count; docker volume inspect -f '{{index .Options \"device\"}}' notes_notes-data");
    assert.deepEqual(inside.stdout.trim().split("\n"), ["2", "/srv/notes/notes-data"]);
  });

  void it("deploy: the page writes its counter onto the volume (a Proxmox mount point holding the compose volume)", async () => {
    const c = await world.container("notes");
    await page(`http://${c.address}/cgi-bin/count`);
    assert.equal(await read(), "count=3");
    const config = await world.admin.lxc.config(c.node, c.vmid);
    assert.equal(config.mounts[0]?.mp, "/srv/notes");
    assert.match(config.mounts[0]?.volume ?? "", new RegExp(`^local-lvm:vm-${c.vmid}-disk-`));
    const inside = await world.guest(c.address, "cat /srv/notes/notes-data/count");
    assert.equal(inside.stdout.trim(), "3");
  });

  void it("a template change replaces the container: the volume moves to the new one (after a backup of the old) and the count is kept", async () => {
    const before = await world.container("notes");
    version = "<12.7";
    writeService();
    const t = Date.now();
    const r = await world.deploy("notes");
    world.figures.push(`replace with the volume kept: ${sec(Date.now() - t)}`);
    const now = await world.container("notes");
    assert.notEqual(now.vmid, before.vmid, r.stdout);
    assert.equal(await read(), "count=3");
    await assert.rejects(world.admin.lxc.config(before.node, before.vmid), "the old container is gone");
    const backups = await world.homelab("--env", "sandbox", "backups", "notes", "--json");
    const listed = JSON.parse(backups.stdout) as { entries: Array<{ kind: string; vmid: number; why: string }> };
    assert.ok(listed.entries.some((e) => e.kind === "backup" && e.vmid === before.vmid && /replacing/.test(e.why)), backups.stdout);
  });

  void it("a bigger volume is a resize in place: same container, the mount point grows, the count is kept", async () => {
    const before = await world.container("notes");
    size = 2;
    writeService();
    const preview = await world.homelab("--env", "sandbox", "deploy", "notes", "--dry-run");
    assert.doesNotMatch(preview.stdout, /replace/i, preview.stdout);
    await world.deploy("notes");
    const now = await world.container("notes");
    assert.equal(now.vmid, before.vmid);
    assert.equal((await world.admin.lxc.config(now.node, now.vmid)).mounts[0]?.size, "2G");
    assert.equal(await read(), "count=3");
    size = 1;
    writeService();
    const shrink = await world.homelab("--env", "sandbox", "deploy", "notes", "--dry-run");
    assert.notEqual(shrink.code, 0);
    assert.match(shrink.stdout + shrink.stderr, /cannot shrink to 1 GB/);
    size = 2;
    writeService();
  });

  void it("the monitor's recreate (a project a restart does not fix) keeps the data: backup, new container, same count", async () => {
    const before = await world.container("notes");
    const deployed = await world.guest(before.address, "grep -m1 'image:' /opt/homelab/notes/docker-compose.yaml");
    const image = /image:\s*(\S+)/.exec(deployed.stdout)?.[1];
    assert.ok(image, deployed.stdout);
    const broken = compose(image, { broken: true }).replace(/'/g, "'\\''");
    await world.guest(before.address, `printf '%s' '${broken}' > /opt/homelab/notes/docker-compose.yaml && systemctl restart homelab-notes`);
    const monitor = world.spawn("--env", "sandbox", "monitor", "notes", "--json");
    const events: MonitorEvent[] = [];
    let buffer = "";
    monitor.stdout?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (line.startsWith("{")) events.push(JSON.parse(line) as MonitorEvent);
      }
    });
    const t = Date.now();
    try {
      const deadline = Date.now() + 10 * 60_000;
      while (!events.some((e) => e.type === "action" && e.action === "recreate" && e.phase === "ok") && Date.now() < deadline) {
        if (events.some((e) => e.type === "action" && e.action === "recreate" && e.phase === "failed")) assert.fail(JSON.stringify(events));
        await new Promise((r) => setTimeout(r, 1000));
      }
      assert.ok(events.some((e) => e.type === "action" && e.action === "recreate" && e.phase === "ok"), JSON.stringify(events.slice(-5)));
    } finally {
      monitor.kill("SIGINT");
      await new Promise((r) => monitor.once("exit", r));
    }
    world.figures.push(`monitor recreate, broken to recreated: ${sec(Date.now() - t)}`);
    const now = await world.container("notes");
    assert.notEqual(now.vmid, before.vmid);
    await waitForPage(`http://${now.address}/cgi-bin/read`, "count=3", 60_000);
  });

  void it("destroy keeps the container with its data (status lists it), and the next deploy takes the volume back", async () => {
    const before = await world.container("notes");
    const d = await world.homelab("--env", "sandbox", "destroy", "notes", "--yes");
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.match(d.stdout, new RegExp(`data kept.*CT ${before.vmid}`));
    const kept = await world.admin.lxc.config(before.node, before.vmid);
    assert.ok(kept.tags.includes("homelab-kept"), kept.tags.join(";"));
    assert.equal((await world.admin.lxc.status(before.node, before.vmid)).status, "stopped");
    const status = await world.homelab("--env", "sandbox", "status");
    assert.match(status.stdout, /Orphaned data/);
    assert.match(status.stdout, new RegExp(`notes\\s+CT ${before.vmid}`));
    await world.deploy("notes");
    const now = await world.container("notes");
    assert.notEqual(now.vmid, before.vmid);
    assert.equal(await read(), "count=3");
    await assert.rejects(world.admin.lxc.config(before.node, before.vmid), "the kept container is gone once its volume moved");
  });

  void it("a deploy whose change fails the health checks is rolled back to its snapshot: same container, the old page and count", async () => {
    const before = await world.container("notes");
    await page(`http://${before.address}/cgi-bin/count`);
    assert.equal(await read(), "count=4");
    writeFileSync(join(world.repo, "services", "notes", "docker-compose.yaml"), compose("notes-web", { broken: true }));
    const t = Date.now();
    const r = await world.homelab("--env", "sandbox", "deploy", "notes", "--yes");
    world.figures.push(`failed deploy and rollback: ${sec(Date.now() - t)}`);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /ROLLED BACK/);
    assert.match(r.stdout, /rolled back to snapshot homelab_/);
    assert.match(r.stdout, /healthy again/);
    const now = await world.container("notes");
    assert.equal(now.vmid, before.vmid);
    assert.equal(await read(), "count=4");
    writeFileSync(join(world.repo, "services", "notes", "docker-compose.yaml"), compose("notes-web"));
    const again = await world.homelab("--env", "sandbox", "deploy", "notes", "--yes");
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });

  void it("a replace whose new container fails its health checks is rolled back: the old container's backup restored over the new one", async () => {
    const before = await world.container("notes");
    const count = await read();
    // Away from the deployed 12.2-1 (templates are sticky while they still match): Debian 13.
    version = ">=13";
    writeService();
    writeFileSync(join(world.repo, "services", "notes", "docker-compose.yaml"), compose("notes-web", { broken: true }));
    const t = Date.now();
    const r = await world.homelab("--env", "sandbox", "deploy", "notes", "--yes");
    world.figures.push(`failed replace and rollback: ${sec(Date.now() - t)}`);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /ROLLED BACK/);
    assert.match(r.stdout, new RegExp(`replaced CT ${before.vmid}, restored from that container's backup`));
    assert.match(r.stdout, /healthy again/);
    const now = await world.container("notes");
    assert.notEqual(now.vmid, before.vmid);
    assert.equal(await read(), count);
    // The state names the template the restored disks came from, so the replace is still to do.
    const dry = await world.homelab("--env", "sandbox", "deploy", "notes", "--dry-run");
    assert.match(dry.stdout, /replace\s+notes_container/, dry.stdout);
    writeFileSync(join(world.repo, "services", "notes", "docker-compose.yaml"), compose("notes-web"));
    await world.deploy("notes");
    assert.equal(await read(), count);
  });

  void it("destroy --delete-data removes the container and its volume, after a backup", async () => {
    const before = await world.container("notes");
    const volume = (await world.admin.lxc.config(before.node, before.vmid)).mounts[0]?.volume;
    const d = await world.homelab("--env", "sandbox", "destroy", "notes", "--yes", "--delete-data");
    assert.equal(d.code, 0, d.stdout + d.stderr);
    await assert.rejects(world.admin.lxc.config(before.node, before.vmid));
    const content = await world.admin.storage.content(before.node, "local-lvm", { content: "rootdir" });
    assert.ok(!content.some((x) => x.volid === volume), `volume ${volume ?? "?"} is gone`);
    const backups = await world.homelab("--env", "sandbox", "backups", "notes", "--json");
    assert.ok((JSON.parse(backups.stdout) as { entries: Array<{ why: string }> }).entries.some((e) => /deleting the container and its data/.test(e.why)), backups.stdout);
  });

  void it("a container with a bind mount cannot be snapshotted: its restart-requiring change is preceded by a backup", async () => {
    const host = join(world.repo, "media");
    mkdirSync(host, { recursive: true });
    writeFileSync(join(host, "song.txt"), "la la\n");
    writeService(`    bind_mounts:\n      - { host: ${host}, path: /media, read_only: true }`);
    writeFileSync(join(world.repo, "services", "notes", "docker-compose.yaml"), compose("notes-web"));
    await world.deploy("notes");
    const c = await world.container("notes");
    assert.equal((await world.guest(c.address, "cat /media/song.txt")).stdout.trim(), "la la");
    await page(`http://${c.address}/cgi-bin/count`);
    // A changed bind mount applies at the next start: a restart, so a rollback point first.
    writeService(`    bind_mounts:\n      - { host: ${host}, path: /media, read_only: false }`);
    await world.deploy("notes");
    const listed = JSON.parse((await world.homelab("--env", "sandbox", "backups", "notes", "--json")).stdout) as { entries: Array<{ kind: string; vmid: number; why: string }> };
    const mine = listed.entries.filter((e) => e.vmid === c.vmid);
    assert.ok(mine.some((e) => e.kind === "backup" && /restarts/.test(e.why)), JSON.stringify(mine));
    assert.ok(!mine.some((e) => e.kind === "snapshot"), JSON.stringify(mine));
    assert.equal(await read(), "count=1");
    const d = await world.homelab("--env", "sandbox", "destroy", "notes", "--yes", "--delete-data");
    assert.equal(d.code, 0, d.stdout + d.stderr);
  });
});
