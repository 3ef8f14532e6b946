/// <reference types="vitest/config" />
// Vite builds the app into dist/ (embedded into the `rivulet` binary); `npm run dev`
// serves it with the API proxied to a local `rivulet server` on RIVULET_URL.
import { defineConfig } from 'vite';

const server = process.env.RIVULET_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2020', reportCompressedSize: false },
  server: { proxy: { '/v1': server, '/healthz': server, '/metrics': server } },
  test: { include: ['test/**/*.test.{ts,tsx}'], environment: 'node' },
});
