// DynamoDB Local, listening on 127.0.0.1 only: version 1.11.478 has no option for the
// address and binds every interface. Run as a single-file program (Java 11+, a JDK):
//   java -cp "DynamoDBLocal.jar:DynamoDBLocal_lib/*" -Djava.library.path=DynamoDBLocal_lib \
//        LoopbackDynamoDBLocal.java -inMemory -port N
// It takes DynamoDB Local's own arguments, sets the address of its Jetty connectors
// before they open, and serves until killed.

import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector connector : server.getConnectors()) {
            connector.setHost("127.0.0.1");
        }
        proxy.start();
        server.join();
    }
}
