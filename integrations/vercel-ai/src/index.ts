export {
  type ClientOptions,
  type ListQuery,
  type Memory,
  type MemoryList,
  type MemoryType,
  MemtraceClient,
  MemtraceError,
  type NewMemory,
  type SearchQuery,
  type SearchResults,
  type Session,
  type SessionContext,
} from "./client.js";
export { memtraceTools, type MemtraceToolsOptions, retrieval } from "./tools.js";
