// ESLint for the TypeScript and JavaScript of the repository (`npm run lint`, part of `npm test`).
// Rules: eslint's and typescript-eslint's recommended sets (syntax-only, so linting stays fast on a
// busy machine), with the few changes below, each with its reason. The AssemblyScript filter is
// checked by its own compiler (asc), whose dialect (decorators on functions, i32/u8 types) is not
// TypeScript, so it is not linted here.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import globals from "globals";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "filter/**", "**/*.d.ts"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node }, ecmaVersion: 2022, sourceType: "module" },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // Unused names are mistakes; a leading underscore marks a parameter kept for its position.
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none", ignoreRestSiblings: true }],
      // Empty catch blocks are used deliberately with a comment saying why (best-effort cleanup).
      "no-empty": ["error", { allowEmptyCatch: true }],
      // Wire formats (DNS, pcap, protobuf) are parsed with control characters in regular expressions on purpose.
      "no-control-regex": "off",
      // `while (true)` / `for (;;)` loops that return from inside are idiomatic for parsers and pollers.
      "no-constant-condition": ["error", { checkLoops: false }],
      // A `let` assigned once but read by a closure created before the assignment must stay `let`.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // Tests drive untyped surfaces (grpc-js dynamic clients, raw wasm imports): `any` is allowed there.
    files: ["control/test/**/*.ts", "istio-tests/**/*.ts", "bench/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    files: ["**/*.mjs", "**/*.js", "**/*.cjs"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
