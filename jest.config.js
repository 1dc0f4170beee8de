/** Unit tests run by default; the real-engine and lab tests are their own projects (see README). */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  testMatch: ["<rootDir>/test/**/*.test.ts"],
};
