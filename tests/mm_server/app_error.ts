/**
 * Mattermost's `model.AppError`: the JSON error body every REST failure carries.
 *
 * @module
 */

/** The JSON body of an error response, as the Go server writes it. */
export interface AppErrorJson {
  id: string;
  message: string;
  detailed_error: string;
  request_id: string;
  status_code: number;
}

/**
 * An error with a Mattermost translation id and an HTTP status. Handlers throw it; the HTTP layer turns it
 * into the JSON body Client4 parses (`server_error_id` ← `id`, `status_code` ← `status_code`).
 *
 * @example
 * ```ts
 * throw new AppError("api.context.permissions.app_error", "You do not have the appropriate permissions.", 403);
 * ```
 */
export class AppError extends Error {
  /** Translation id, e.g. `api.context.permissions.app_error`. */
  readonly id: string;
  /** HTTP status code. */
  readonly statusCode: number;
  /** Extra detail (the real server blanks it outside developer mode; kept for debugging the stand-in). */
  readonly detailedError: string;

  constructor(id: string, message: string, statusCode: number, detailedError = "") {
    super(message);
    this.id = id;
    this.statusCode = statusCode;
    this.detailedError = detailedError;
  }

  /** The response body, with the request id of the failing request. */
  toJson(requestId: string): AppErrorJson {
    return {
      id: this.id,
      message: this.message,
      detailed_error: this.detailedError,
      request_id: requestId,
      status_code: this.statusCode,
    };
  }
}

/** 401 for a missing, unknown or revoked token (`api.context.session_expired.app_error`). */
export function sessionExpired(): AppError {
  return new AppError(
    "api.context.session_expired.app_error",
    "Invalid or expired session, please login again.",
    401,
  );
}

/** 403 like `c.SetPermissionError(permission)`. */
export function permissionError(permission: string): AppError {
  return new AppError(
    "api.context.permissions.app_error",
    "You do not have the appropriate permissions.",
    403,
    `permission=${permission}`,
  );
}

/** 400 like `c.SetInvalidURLParam(name)`. */
export function invalidUrlParam(name: string): AppError {
  return new AppError(
    "api.context.invalid_url_param.app_error",
    `Invalid or missing ${name} parameter in request URL.`,
    400,
  );
}

/** 400 like `c.SetInvalidParam(name)`. */
export function invalidParam(name: string): AppError {
  return new AppError("api.context.invalid_param.app_error", `Invalid ${name} parameter.`, 400);
}

/** 400 like `c.SetInvalidParamWithErr(name, err)` for a body that does not decode. */
export function invalidBodyParam(name: string, detail = ""): AppError {
  return new AppError(
    "api.context.invalid_body_param.app_error",
    `Invalid or missing ${name} in request body.`,
    400,
    detail,
  );
}

/** 404 with the given store error id. */
export function notFound(id: string, what: string): AppError {
  return new AppError(id, `Unable to find the existing ${what}.`, 404);
}
