export {
  type Any,
  isAny,
  knownTypes,
  packAny,
  typeNameOf,
  unpackAny,
  unpackKnownAny,
} from "./any.js";
export { encodeMessage, recordEncoding } from "./encoding.js";
