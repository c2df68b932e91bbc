import type { BaseContext } from 'clipanion';

/** What a command runs with: its streams and its working directory, so tests run the CLI in-process. */
export interface GlayerContext extends BaseContext {
  cwd: string;
}
