import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { postgresOptions, likePrefix } from "../../src/engine/store-postgres.ts";
import { parseListing, s3Location, signRequest, uriEncode } from "../../src/engine/store-s3.ts";
import { withoutPassword } from "../../src/engine/settings.ts";

void describe("reading a shared backend's URL as Pulumi does", () => {
  void it("postgres://: host, port, user and database from the URL, else PG*; sslmode as lib/pq; keys below the database's name", () => {
    const o = postgresOptions("postgres://homelab@db.lan:6543/state?sslmode=disable&table=my_state", { PGPASSWORD: "pw" });
    assert.equal(o.options.host, "db.lan");
    assert.equal(o.options.port, 6543);
    assert.equal(o.options.user, "homelab");
    assert.equal(o.options.database, "state");
    assert.equal(o.options.password, "pw");
    assert.equal(o.options.ssl, false);
    assert.equal(o.table, "my_state");
    assert.equal(o.prefix, "state/");
    assert.equal(o.target, "db.lan:6543/state as homelab");
    const bare = postgresOptions("postgres://", { PGHOST: "h", PGUSER: "u", PGDATABASE: "d" });
    assert.deepEqual([bare.options.host, bare.options.user, bare.options.database, bare.options.port, bare.table, bare.prefix], ["h", "u", "d", 5432, "pulumi_state", ""]);
    // No sslmode: encrypted without verification (lib/pq's default); verify-full verifies.
    assert.deepEqual(postgresOptions("postgres://u@h/d", {}).options.ssl, { rejectUnauthorized: false });
    assert.deepEqual(postgresOptions("postgres://u@h/d?sslmode=verify-full", {}).options.ssl, { rejectUnauthorized: true });
    assert.throws(() => postgresOptions("postgres://u@h/d?table=x;drop", {}), /not a plain table name/);
  });

  void it("LIKE patterns match the prefix only (its _ and % escaped)", () => {
    assert.equal(likePrefix("homelab_state/.pulumi/locks/x%y/"), "homelab\\_state/.pulumi/locks/x\\%y/%");
  });

  void it("s3://: a bare endpoint is https unless disableSSL; path style; region from the URL, else AWS_REGION; the path is a prefix", () => {
    const a = s3Location("s3://state/lab?endpoint=minio.lan:9000&disableSSL=true&s3ForcePathStyle=true&region=eu-1", {});
    assert.deepEqual(a, { bucket: "state", prefix: "lab/", endpoint: "http://minio.lan:9000", region: "eu-1", pathStyle: true, anonymous: false, profile: "default" });
    const b = s3Location("s3://state?endpoint=https://s3.lan/&use_path_style=true&profile=team", { AWS_REGION: "us-west-2" });
    assert.deepEqual([b.endpoint, b.region, b.pathStyle, b.prefix, b.profile], ["https://s3.lan", "us-west-2", true, "", "team"]);
    assert.equal(s3Location("s3://state", { AWS_DEFAULT_REGION: "ap-1" }).endpoint, "https://s3.ap-1.amazonaws.com");
  });

  void it("SigV4: AWS's documented example of a bucket listing (GET /?max-keys=2&prefix=J) gets AWS's signature", () => {
    // From the S3 API reference, "Signature Calculations for the Authorization Header", example GET Bucket (List Objects).
    const creds = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", sessionToken: undefined };
    const now = new Date("2013-05-24T00:00:00Z");
    const h = signRequest({ method: "GET", url: new URL("https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J"), region: "us-east-1", creds, now });
    assert.equal(h["authorization"], "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    assert.equal(h["x-amz-date"], "20130524T000000Z");
    // The query is signed sorted, so its order as sent does not matter; a session token is signed too.
    assert.equal(signRequest({ method: "GET", url: new URL("https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2"), region: "us-east-1", creds, now })["authorization"], h["authorization"]);
    assert.match(signRequest({ method: "GET", url: new URL("https://b.s3.amazonaws.com/"), region: "us-east-1", creds: { ...creds, sessionToken: "tok" }, now })["authorization"] ?? "", /SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,/);
    assert.ok(!JSON.stringify(h).includes(creds.secretAccessKey));
    assert.equal(uriEncode("a b/c*!(')"), "a%20b%2Fc%2A%21%28%27%29");
    assert.equal(uriEncode("a b/c", true), "a%20b/c");
  });

  void it("ListObjectsV2 answers: keys with XML entities decoded, and the next page's token", () => {
    const xml = `<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>.pulumi/stacks/homelab/a&amp;b.json</Key><Size>3</Size></Contents><Contents><Key>x&#47;y</Key></Contents><NextContinuationToken>t&lt;1</NextContinuationToken></ListBucketResult>`;
    assert.deepEqual(parseListing(xml), { keys: [".pulumi/stacks/homelab/a&b.json", "x/y"], next: "t<1" });
    assert.deepEqual(parseListing("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"), { keys: [], next: undefined });
  });

  void it("a postgres:// URL's password (user info or lib/pq's ?password=) comes out of it; other URLs stay as given", () => {
    assert.deepEqual(withoutPassword("postgres://u:p%40ss@h/d?sslmode=disable"), { url: "postgres://u@h/d?sslmode=disable", password: "p@ss" });
    assert.deepEqual(withoutPassword("postgres://u@h/d?password=pw"), { url: "postgres://u@h/d", password: "pw" });
    assert.deepEqual(withoutPassword("s3://b?endpoint=x"), { url: "s3://b?endpoint=x", password: undefined });
  });
});
