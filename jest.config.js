/** Every test file under test/; scripts/test runs them (the lab-based ones one at a time). ts-jest
 *  only transpiles (tsconfig's isolatedModules): `tsc --noEmit` in scripts/test type-checks the
 *  whole project once, instead of once more for every test file. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  testMatch: ["<rootDir>/test/**/*.test.ts"],
};
