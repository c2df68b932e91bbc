/** Progress of long work, reported by callback (the CLI draws it; the API never prints). */
export interface ProgressEvent { phase: string; done: number; total: number }
export type Progress = (p: ProgressEvent) => void;

/** Options every API call takes: where to start looking for the workspace. */
export interface WorkspaceOptions {
  /** A directory inside the workspace or its view (default: process.cwd()). */
  cwd?: string;
  onProgress?: Progress;
}
