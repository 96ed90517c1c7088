// One broker transport on Node, chosen by URL: node transport.mjs <url> <transport options as JSON>.
import { Agent } from "@spores/spores";
import { exercise } from "./scenario.mjs";

const [url, options] = process.argv.slice(2);
const result = await exercise(Agent, url, JSON.parse(options ?? "{}"));
console.log(JSON.stringify({ node: process.version, ...result }));
