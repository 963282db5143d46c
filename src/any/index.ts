export {
  type Any,
  isAny,
  knownTypes,
  packAny,
  typeNameOf,
  unpackAny,
  unpackKnownAny,
} from "./any.js";
export {
  concatParts,
  encodeMessage,
  encodeMessageParts,
  partsLength,
  recordEncoding,
  takeWrittenCallback,
} from "./encoding.js";
