export { abortReason, orAbort, throwIfAborted } from "./abort.js";
export {
  Code,
  codeName,
  codeOfKind,
  codeOfNodeError,
  type ErrorKind,
  errnoOf,
  TransferError,
  toConnectError,
} from "./transfer-error.js";
