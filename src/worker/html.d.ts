// wrangler's bundler (rule Text, its default for *.html) and the test harness hand these over as strings.
declare module "*.html" {
  const text: string;
  export default text;
}
