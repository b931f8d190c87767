/**
 * Zod pieces for reading Proxmox answers, which are loose about types:
 * numbers sometimes arrive as strings and booleans as 0/1.
 */
import { z } from "zod";

/** A number that may arrive as a numeric string. */
export const num = z.union([z.number(), z.string().regex(/^-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$/i).transform(Number)]);

/** A boolean that may arrive as 0/1 (number or string). */
export const flag = z.union([z.boolean(), z.literal(0).transform(() => false), z.literal(1).transform(() => true), z.enum(["0", "1"]).transform((v) => v === "1")]);

/** A comma-separated list (`content: "vztmpl,iso"`), as an array. */
export const commaList = z.string().transform((v) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== ""),
);
