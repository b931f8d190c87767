/** `/access/ticket`: password (or ticket renewal) to a ticket and CSRF token. */
import { ApiError } from "../errors.ts";
import { str, reqStr } from "./common.ts";
import type { Endpoint } from "./types.ts";

/** The endpoints of this module; the ticket endpoints need no authentication. */
export const accessEndpoints: Endpoint[] = [
  {
    method: "GET",
    path: "/access/ticket",
    params: { rules: {} },
    public: true,
    handle: () => Promise.resolve({ data: null }),
  },
  {
    method: "POST",
    path: "/access/ticket",
    public: true,
    params: {
      rules: {
        username: { type: "string", maxLength: 64 },
        password: { type: "string" },
        realm: { type: "string", optional: true, maxLength: 32 },
        otp: { type: "string", optional: true },
        path: { type: "string", optional: true, maxLength: 64, requires: "privs" },
        privs: { type: "string", optional: true, maxLength: 64, requires: "path" },
        "new-format": { type: "boolean", optional: true },
        "tfa-challenge": { type: "string", optional: true },
      },
    },
    handle({ params, state }) {
      const user = state.auth.login(reqStr(params, "username"), reqStr(params, "password"), str(params, "realm"));
      // The server adds the configured delay to every 401.
      if (user === undefined) throw new ApiError(401, "authentication failure");
      const { ticket, csrf } = state.auth.issueTicket(user);
      return Promise.resolve({
        data: {
          username: user,
          ticket,
          CSRFPreventionToken: csrf,
          clustername: state.cluster.name,
          cap: { vms: {}, storage: {}, access: {}, nodes: {}, dc: {}, sdn: {}, mapping: {} },
        },
      });
    },
  },
];
