// Host functions this emulator registers, with their exact wasm signatures as Envoy's V8 host
// links them (reference/proxy-wasm.md §1.2, §1.3; proxy-wasm-cpp-host exports.h). Encoding:
// params ">" results, i = i32, I = i64. A module importing anything else, or the same name with a
// different signature, fails to load exactly as in Envoy.

/** module "env". ABI-specific functions are filtered by abiHostFunctions(). */
export const ENV_FUNCTIONS: Record<string, string> = {
  "proxy_log": "iii>i",
  "proxy_get_status": "iii>i",
  "proxy_set_property": "iiii>i",
  "proxy_get_property": "iiii>i",
  "proxy_send_local_response": "iiiiiiii>i",
  "proxy_get_shared_data": "iiiii>i",
  "proxy_set_shared_data": "iiiii>i",
  "proxy_register_shared_queue": "iii>i",
  "proxy_resolve_shared_queue": "iiiii>i",
  "proxy_dequeue_shared_queue": "iii>i",
  "proxy_enqueue_shared_queue": "iii>i",
  "proxy_get_header_map_value": "iiiii>i",
  "proxy_add_header_map_value": "iiiii>i",
  "proxy_replace_header_map_value": "iiiii>i",
  "proxy_remove_header_map_value": "iii>i",
  "proxy_get_header_map_pairs": "iii>i",
  "proxy_set_header_map_pairs": "iii>i",
  "proxy_get_header_map_size": "ii>i",
  "proxy_get_buffer_status": "iii>i",
  "proxy_get_buffer_bytes": "iiiii>i",
  "proxy_set_buffer_bytes": "iiiii>i",
  "proxy_http_call": "iiiiiiiiii>i",
  "proxy_grpc_call": "iiiiiiiiiiii>i",
  "proxy_grpc_stream": "iiiiiiiii>i",
  "proxy_grpc_close": "i>i",
  "proxy_grpc_cancel": "i>i",
  "proxy_grpc_send": "iiii>i",
  "proxy_set_tick_period_milliseconds": "i>i",
  "proxy_get_current_time_nanoseconds": "i>i",
  "proxy_define_metric": "iiii>i",
  "proxy_increment_metric": "iI>i",
  "proxy_record_metric": "iI>i",
  "proxy_get_metric": "ii>i",
  "proxy_set_effective_context": "i>i",
  "proxy_done": ">i",
  "proxy_call_foreign_function": "iiiiii>i",
  "proxy_continue_stream": "i>i",
  "proxy_close_stream": "i>i",
  "proxy_get_log_level": "i>i",
  "proxy_get_configuration": "ii>i",
  "proxy_continue_request": ">i",
  "proxy_continue_response": ">i",
  "proxy_clear_route_cache": ">i",
  "pthread_equal": "ii>i",
  "emscripten_notify_memory_growth": "i>",
  "envoy_resolve_dns": "iii>i",
};

/** WASI, registered under both "wasi_snapshot_preview1" and "wasi_unstable". */
export const WASI_FUNCTIONS: Record<string, string> = {
  "fd_write": "iiii>i",
  "fd_read": "iiii>i",
  "fd_seek": "iIii>i",
  "fd_close": "i>i",
  "fd_fdstat_get": "ii>i",
  "environ_get": "ii>i",
  "environ_sizes_get": "ii>i",
  "args_get": "ii>i",
  "args_sizes_get": "ii>i",
  "clock_time_get": "iIi>i",
  "random_get": "ii>i",
  "proc_exit": "i>",
  "path_open": "iiiiiIIii>i",
  "fd_prestat_get": "ii>i",
  "fd_prestat_dir_name": "iii>i",
  "fd_fdstat_set_flags": "ii>i",
  "sched_yield": ">i",
  "poll_oneoff": "iiii>i",
  "fd_fdstat_set_rights": "iII>i",
  "clock_res_get": "ii>i",
  "fd_advise": "iIIi>i",
  "fd_allocate": "iII>i",
  "fd_datasync": "i>i",
  "fd_filestat_set_size": "iI>i",
  "fd_filestat_set_times": "iIIi>i",
  "fd_pread": "iiiIi>i",
  "fd_pwrite": "iiiIi>i",
  "fd_readdir": "iiiIi>i",
  "fd_renumber": "ii>i",
  "fd_sync": "i>i",
  "fd_tell": "ii>i",
  "path_create_directory": "iii>i",
  "path_filestat_set_times": "iiiiIIi>i",
  "path_link": "iiiiii>i",
  "path_readlink": "iiiiii>i",
  "path_remove_directory": "iii>i",
  "path_rename": "iiiiii>i",
  "path_symlink": "iiii>i",
  "path_unlink_file": "iii>i",
  "sock_accept": "iii>i",
  "sock_recv": "iiiiii>i",
  "sock_send": "iiiii>i",
  "sock_shutdown": "ii>i",
  "path_filestat_get": "iiiii>i",
  "fd_filestat_get": "ii>i",
};

export const WASI_MODULES = ["wasi_snapshot_preview1", "wasi_unstable"] as const;

/** Registered only for ABI 0.1.0 modules (§1.1); importing them from 0.2.x fails to link. */
const ABI_0_1_0_ONLY = new Set(["proxy_get_configuration", "proxy_continue_request", "proxy_continue_response", "proxy_clear_route_cache"]);

export type AbiVersion = "0.1.0" | "0.2.0" | "0.2.1";

/** The env function names a module of the given ABI version may import. */
export function abiHostFunctions(abi: AbiVersion): Set<string> {
  const names = new Set<string>();
  for (const name of Object.keys(ENV_FUNCTIONS)) {
    if (ABI_0_1_0_ONLY.has(name) && abi !== "0.1.0") continue;
    if (name === "proxy_get_log_level" && abi !== "0.2.1") continue;
    if ((name === "proxy_continue_stream" || name === "proxy_close_stream") && abi === "0.1.0") continue;
    names.add(name);
  }
  return names;
}

/** Signatures of the callbacks the host calls (§1.4); a mismatch fails loading. */
export const EXPORT_SIGNATURES: Record<string, string> = {
  _start: ">",
  _initialize: ">",
  main: "ii>i",
  __main_void: ">i",
  malloc: "i>i",
  proxy_on_memory_allocate: "i>i",
  proxy_on_context_create: "ii>",
  proxy_on_vm_start: "ii>i",
  proxy_on_configure: "ii>i",
  proxy_validate_configuration: "ii>i",
  proxy_on_tick: "i>",
  proxy_on_new_connection: "i>i",
  proxy_on_downstream_data: "iii>i",
  proxy_on_upstream_data: "iii>i",
  proxy_on_downstream_connection_close: "ii>",
  proxy_on_upstream_connection_close: "ii>",
  proxy_on_http_call_response: "iiiii>",
  proxy_on_grpc_receive_initial_metadata: "iii>",
  proxy_on_grpc_receive: "iii>",
  proxy_on_grpc_receive_trailing_metadata: "iii>",
  proxy_on_grpc_close: "iii>",
  proxy_on_queue_ready: "ii>",
  proxy_on_foreign_function: "iii>",
  proxy_on_done: "i>i",
  proxy_on_log: "i>",
  proxy_on_delete: "i>",
};
