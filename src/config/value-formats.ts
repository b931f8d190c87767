/**
 * Value formats that service.yaml and the environment file share: the same
 * rule in both places gives the same answer and the same error. Pure.
 */

/** An IPv4 address. */
export const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
/** An IPv4 address with its prefix length (`192.168.1.50/24`). */
export const IPV4_CIDR = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\/([1-2]?\d|3[0-2])$/;
/** A Proxmox storage id (`pve-storage-id`: `local`, `local-lvm`). */
export const STORAGE_ID = /^[A-Za-z][-_.A-Za-z0-9]*$/;
