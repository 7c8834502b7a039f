/** Part 3 of the demo: a TCP broker and two worker processes on loopback. */
export async function tcpDemo(): Promise<void> {
  console.log('\n== 3. TCP broker + two workers on loopback ==');
  console.log('(the TCP transport is not built yet)');
}
