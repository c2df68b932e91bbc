/** glayer's library API: one verb per module; every verb returns data and never prints. */
export { init, listTemplates, type InitOptions, type InitResult, type TemplateInfo } from './api/init.js';
export { mountView, type MountViewOptions, type MountViewResult } from './api/mount-view.js';
export { status, type StatusItem, type StatusResult } from './api/status.js';
export { commit, type CommitOptions, type CommitResult } from './api/commit.js';
export { log, type LayerInfo, type LogOptions } from './api/log.js';
export { info, type InfoResult } from './api/info.js';
export type { Progress, ProgressEvent, WorkspaceOptions } from './api/types.js';
export * from './errors.js';
